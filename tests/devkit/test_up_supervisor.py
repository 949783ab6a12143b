"""`vispod up`'s supervisor with real processes: a killed service is restarted after its backoff and said so on the
console; one that keeps dying is given up on loudly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vispod.devkit.supervisor import GaveUp, RestartPolicy, Supervised, Supervisor


def _spawner(code: str) -> tuple[list[subprocess.Popen[bytes]], object]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        started.append(subprocess.Popen([sys.executable, "-c", code]))
        return started[-1]

    return started, start


def _run_until(sup: Supervisor, done, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "supervisor did not get there in time"
        sup.check()
        time.sleep(0.05)


def test_a_killed_service_is_restarted_after_its_backoff_and_the_console_says_so(tmp_path: Path) -> None:
    started, start = _spawner("import time; time.sleep(120)")
    lines: list[str] = []
    svc = Supervised("generator", start, 0, tmp_path / "generator.log", start())
    sup = Supervisor([svc], RestartPolicy(backoff_s=0.3), say=lines.append, is_ready=lambda port: True)
    try:
        os.kill(started[0].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        _run_until(sup, lambda: any("ready again" in line for line in lines))
        assert len(started) == 2 and started[1].poll() is None and svc.process is started[1]
        assert time.monotonic() - killed_at >= 0.3  # the backoff was waited
        assert lines[0].startswith("generator was killed by SIGKILL; restarting it in 0.3 s (1 of 5 exits allowed")
        assert lines[1] == f"generator: restarted (pid {started[1].pid}, restart 1)"
        assert lines[2].startswith("generator: ready again, ")
    finally:
        for p in started:
            p.kill()
            p.wait()


def test_a_service_that_keeps_dying_is_given_up_on_loudly(tmp_path: Path) -> None:
    started, start = _spawner("raise SystemExit(3)")
    lines: list[str] = []
    svc = Supervised("metrics", start, 0, tmp_path / "metrics.log", start())
    sup = Supervisor([svc], RestartPolicy(backoff_s=0.05, max_crashes=3), say=lines.append)
    with pytest.raises(GaveUp, match=r"metrics exited with 3: 3 exits in 300 s, giving up on it and stopping the "
                                     r"stack; see .*metrics.log"):
        _run_until(sup, lambda: False)
    assert len(started) == 3
    delays = [line.split("restarting it in ")[1].split(" s")[0] for line in lines if "restarting it in" in line]
    assert delays == ["0.05", "0.1"]  # doubling while it keeps dying
