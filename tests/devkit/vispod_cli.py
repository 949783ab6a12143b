"""The `vispod` command as a process, for the developer-kit tests."""

from __future__ import annotations

import subprocess
import sys
import time

VISPOD = [sys.executable, "-m", "vispod.common.cli"]


def lines_until_ready(proc: subprocess.Popen, timeout: float) -> list[str]:
    """`vispod up`'s output up to its "ready" line (or its end, or the timeout)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("ready"):
            break
    return lines
