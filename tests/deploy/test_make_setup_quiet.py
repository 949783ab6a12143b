"""`make setup` shows a newcomer progress, not screens of setuptools deprecation warnings."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _editable_install_command() -> str:
    """The editable-install command `make setup` runs, as make prints it (continuation lines joined)."""
    dry = subprocess.run(["make", "-n", "-B", "setup"], cwd=REPO, capture_output=True, text=True, timeout=60)
    text = dry.stdout.replace("\\\n", " ")
    [line] = [ln for ln in text.splitlines() if "pip install" in ln and " -e services/" in ln]
    return line


def test_the_editable_installs_print_no_deprecation_noise() -> None:
    command = _editable_install_command()
    # The same command for one service, without re-resolving dependencies (they are installed already) and with the
    # venv's setuptools (an isolated build would fetch it from PyPI: the suite runs with only loopback reachable).
    one = re.sub(r"(\s-e services/\S+)+", " -e services/judge", command).replace(
        " install ", " install --no-deps --no-build-isolation ", 1)
    run = subprocess.run(["bash", "-c", one], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    output = run.stdout + run.stderr
    assert "!!" not in output and "*****" not in output, output
    assert not re.search(r"deprecat|will be removed", output, re.I), output
