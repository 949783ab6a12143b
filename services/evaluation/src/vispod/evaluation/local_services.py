"""Metrics and judge services started in-process for `vispod eval` when no address is given.

They are the real services (their gRPC servers on 127.0.0.1, an ephemeral port), so `vispod eval` talks to them
exactly as it talks to deployed ones. Both packages are dependencies of vispod-evaluation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from vispod.common.settings import ImageAccessSettings
from vispod.judge.service import build as build_judge
from vispod.judge.settings import JudgeSettings
from vispod.metrics.service import build as build_metrics
from vispod.metrics.settings import MetricsSettings


@contextlib.contextmanager
def local_metrics(roots: Sequence[Path], *, grounding: bool, clip_model: str, clip_weights: Path | None,
                  clip_random: bool = False, max_images: int = 32, text_model: bool = True) -> Iterator[str]:
    """Yields the address of an in-process MetricsService: CLIP from `clip_weights`, or random weights (labelled)
    only with `clip_random`; MiniLM's aligned grounding and naturalness unless `text_model` is off."""
    settings = MetricsSettings(
        grpc_port=0, metrics_port=0, consume=False, grounding_enabled=grounding, text_model_enabled=text_model,
        clip_model=clip_model,
        clip_weights=clip_weights, clip_random_init=grounding and clip_random, shutdown_drain_s=0,
        shutdown_grace_s=1, images=ImageAccessSettings(file_roots=[Path(r) for r in roots], max_images=max_images))
    handle = build_metrics(settings).start()
    try:
        yield f"127.0.0.1:{handle.grpc_port}"
    finally:
        handle.stop()


@contextlib.contextmanager
def local_judge(roots: Sequence[Path], judges: Sequence[str], criteria: Sequence[str]) -> Iterator[str]:
    """Yields the address of an in-process JudgeService configured with `judges` (e.g. "local")."""
    extra = {"criteria": list(criteria)} if criteria else {}
    settings = JudgeSettings(grpc_port=0, metrics_port=0, consume=False, judges=list(judges), shutdown_drain_s=0,
                             shutdown_grace_s=1, images=ImageAccessSettings(file_roots=[Path(r) for r in roots]),
                             **extra)
    handle = build_judge(settings).start()
    try:
        yield f"127.0.0.1:{handle.grpc_port}"
    finally:
        handle.stop()
