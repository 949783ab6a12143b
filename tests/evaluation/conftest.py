"""Evaluation test fixtures: the gate's synthetic evaluation set."""

from __future__ import annotations

from pathlib import Path

import pytest

from vispod.gate.evalset import write_builtin_set


@pytest.fixture
def builtin_set(tmp_path: Path) -> Path:
    return write_builtin_set(tmp_path / "evalset")
