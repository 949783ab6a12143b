"""Gate test fixtures: a synthetic evaluation set, a tiny random CLIP, scripted gRPC services."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_scripted import Servers

from vispod.gate.evalset import write_builtin_set

TINY_CLIP = "vispod-gate-test-tiny-clip"
# ViT-B-32's layout at a width and depth that runs in milliseconds (random weights: nothing offline ships CLIP).
_TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    import open_clip

    cfg_dir = tmp_path_factory.mktemp("gate-clip-config")
    (cfg_dir / f"{TINY_CLIP}.json").write_text(json.dumps(_TINY_CLIP_CONFIG))
    open_clip.add_model_config(cfg_dir)
    return TINY_CLIP


@pytest.fixture
def builtin_set(tmp_path: Path) -> Path:
    return write_builtin_set(tmp_path / "evalset")


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.stop()
