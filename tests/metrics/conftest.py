"""Fixtures of the metrics tests: one random-initialised ViT-B-32 per session, generated images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_clip import register_tiny_clip

from vispod.metrics.caption_grounding import CaptionGrounder
from vispod.metrics.clip_model import ClipBundle, load_clip
from vispod.metrics.grounding import GroundingScorer

# The default ViT-B-32 itself is exercised in test_metrics_grounding and the benchmark.
TINY_CLIP = "vispod-test-tiny-clip"


@pytest.fixture(scope="session")
def clip_bundle(tmp_path_factory: pytest.TempPathFactory) -> ClipBundle:
    """Random weights (nothing offline ships CLIP weights): fine for parity and plumbing, not for quality."""
    register_tiny_clip(tmp_path_factory.mktemp("clip-config"), TINY_CLIP, 64, 2)
    return load_clip(TINY_CLIP, random_init=True, seed=0)


@pytest.fixture(scope="session")
def vit_b32() -> ClipBundle:
    return load_clip("ViT-B-32", random_init=True, seed=0)


@pytest.fixture(scope="session")
def caption_grounder() -> CaptionGrounder:
    """all-MiniLM-L6-v2 with its real weights, loaded once per session (loads on first use)."""
    return CaptionGrounder()


@pytest.fixture(scope="session")
def grounding_scorer(clip_bundle: ClipBundle) -> GroundingScorer:
    return GroundingScorer(clip_bundle, cache_size=64, text_batch_size=8, image_batch_size=4)


def make_image(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A distinct synthetic picture: smooth colour gradients plus noise, different per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * rng.uniform(0.2, 1.0) + yy * rng.uniform(0.2, 1.0) + rng.uniform(0, 255)) % 256
                     for _ in range(3)], axis=-1)
    noisy = base + rng.normal(0, 20, size=base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("metrics-images")
    for i in range(6):
        make_image(i).save(root / f"img{i}.png")
    make_image(99).save(root / "photo.jpg", quality=90)
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20)
    return root
