"""Fixtures: a tiny random Qwen3-VL built once per session, and small pairs folders in the dataset builder's layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from vispod.devkit.testing.sample_pairs import write_sample_pairs
from vispod.trainer.settings import TrainerSettings


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vispod.devkit.testing.tiny_vlm import build_tiny_qwen3_vl

    return build_tiny_qwen3_vl(tmp_path_factory.mktemp("tiny-qwen3-vl"))


@pytest.fixture(scope="session")
def tiny_model_wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hidden size 128: with tied 0.02-std embeddings the logit range grows with the width, so this one can
    visibly overfit (hidden 32 can only move its loss by ~0.1 nats whatever it learns)."""
    from vispod.devkit.testing.tiny_vlm import build_tiny_qwen3_vl

    return build_tiny_qwen3_vl(tmp_path_factory.mktemp("tiny-qwen3-vl-wide"), hidden=128)


@pytest.fixture
def pairs_dir(tmp_path: Path) -> Path:
    return write_sample_pairs(tmp_path / "pairs", n=4)


def tiny_settings(base: Path, pairs: Path, out: Path, **overrides: object) -> TrainerSettings:
    """Settings for fast CPU runs: one thread (tiny matrices gain nothing from more), no metrics server."""
    values: dict[str, object] = dict(base_model=base, pairs_dir=pairs, output_dir=out, effective_batch_size=2,
                                     micro_batch_size=1, learning_rate=1e-2, eval_fraction=0.0, torch_threads=1,
                                     serve_metrics=False, publish=False, checkpoint_every_steps=0, device="cpu",
                                     artifact_root=out / "artifacts")
    values.update(overrides)
    return TrainerSettings(**values)
