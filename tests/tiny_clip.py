"""A tiny random CLIP for tests: ViT-B-32's layout (224 px, 32 px patches, 77 tokens, CLIP's BPE vocabulary) at a
width and depth that run in milliseconds on 2 cores (random weights: nothing offline ships CLIP weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def register_tiny_clip(folder: Path, name: str, width: int, layers: int) -> str:
    """Registers the model config `name` with open_clip (from `folder`) and returns the name."""
    import open_clip

    config = {
        "embed_dim": width,
        "vision_cfg": {"image_size": 224, "layers": layers, "width": width, "head_width": width // 2,
                       "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": width, "heads": 2, "layers": layers},
    }
    (Path(folder) / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)
    return name


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The smallest one (width 32, one layer), for the gate's and `vispod eval`'s in-process metrics services."""
    return register_tiny_clip(tmp_path_factory.mktemp("tiny-clip-config"), "vispod-test-tiny-clip", 32, 1)
