"""Gate test fixtures: a synthetic evaluation set, a tiny random CLIP, scripted gRPC services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_scripted import Servers
from tiny_clip import register_tiny_clip

from vispod.gate.evalset import write_builtin_set


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    return register_tiny_clip(tmp_path_factory.mktemp("gate-clip-config"), "vispod-gate-test-tiny-clip", 32, 1)


@pytest.fixture
def builtin_set(tmp_path: Path) -> Path:
    return write_builtin_set(tmp_path / "evalset")


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.stop()
