"""Fixtures of the synth tests: a tiny random pipeline (built once) and settings sized for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vispod.common.settings import KafkaSettings
from vispod.synth.settings import SynthSettings
from vispod.synth.tiny import build_tiny_sd_pipeline

# Small and fast on 2 busy cores: 32×32 pixels, 2 denoising steps.
TINY_SIZE = 32
TINY_STEPS = 2


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd") / "pipeline")


def synth_settings(model_path: Path, artifact_root: Path, kafka: KafkaSettings | None = None, **extra: object):
    return SynthSettings(
        model_path=model_path,
        artifact_root=artifact_root,
        cpu_threads=1,  # one thread: several test processes share two cores
        default_width=TINY_SIZE,
        default_height=TINY_SIZE,
        default_steps=TINY_STEPS,
        max_side=256,
        max_steps=10,
        max_prompts=8,
        grpc_port=0,
        metrics_port=0,
        shutdown_grace_s=2,
        **({"kafka": kafka} if kafka else {}),
        **extra,
    )
