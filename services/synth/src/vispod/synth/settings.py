"""The synth service's one settings class (env prefix VISPOD_SYNTH_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from vispod.common.settings import ServiceSettings


class SynthSettings(ServiceSettings):
    """Where the text-to-image pipeline lives, how it runs, and what a request may ask for."""

    model_config = SettingsConfigDict(env_prefix="VISPOD_SYNTH_", extra="ignore")

    service_name: str = "synth"
    # A diffusers pipeline folder (model_index.json): SD 1.5, SDXL, SD 3.5, FLUX, or the tiny random one.
    model_path: Path | None = None
    # Opt-in: with no model_path, build the tiny RANDOM pipeline under artifact_root (outputs say
    # random_weights=True). Off by default: no model_path is an error at start-up. `vispod up` turns it on.
    tiny_if_unset: bool = False
    # Reported in responses; defaults to the folder name.
    model_name: str = ""
    # Force-mark outputs as drawn by random weights (a vispod_random_weights.json marker does the same).
    random_weights: bool = False
    # cpu, cuda, cuda:N, mps.
    device: str = "cpu"
    # auto: float16 on CUDA, float32 elsewhere.
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # Prompts per pipeline call; a request with more prompts runs in several batches.
    batch_size: int = Field(default=4, ge=1, le=64)
    # Torch intra-op threads on CPU (0: torch's default).
    cpu_threads: int = Field(default=0, ge=0)

    # Request limits: anything beyond is refused with INVALID_ARGUMENT (gRPC) or sent to the DLQ (Kafka).
    max_prompts: int = Field(default=16, ge=1)
    max_prompt_chars: int = Field(default=2000, ge=1)
    default_width: int = Field(default=512, ge=8)
    default_height: int = Field(default=512, ge=8)
    max_side: int = Field(default=1024, ge=8)
    max_pixels: int = Field(default=1024 * 1024, ge=64)
    default_steps: int = Field(default=30, ge=1)
    max_steps: int = Field(default=100, ge=1)
    default_guidance: float = Field(default=7.0, ge=0)
    max_guidance: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _defaults_within_limits(self) -> SynthSettings:
        for name in ("default_width", "default_height", "max_side"):
            if getattr(self, name) % 8:
                raise ValueError(f"{name} must be a multiple of 8")
        if max(self.default_width, self.default_height) > self.max_side:
            raise ValueError("default_width/default_height exceed max_side")
        if self.default_steps > self.max_steps:
            raise ValueError("default_steps exceeds max_steps")
        if self.default_guidance > self.max_guidance:
            raise ValueError("default_guidance exceeds max_guidance")
        return self
