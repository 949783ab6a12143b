"""Perception settings: which models run and their thresholds. The thresholds' defaults are the calibrated ones
in `calibration.json` (made by `vispod perception calibrate` on the development split), never picked by eye."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, Field

CALIBRATION_FILE = "calibration.json"


@cache
def calibration() -> dict[str, Any]:
    return json.loads(resources.files("vispod.perception").joinpath(CALIBRATION_FILE).read_text(encoding="utf-8"))


def _calibrated(task: str) -> float:
    return float(calibration()[task]["min_score"])


class PerceptionSettings(BaseModel):
    """Nested in a service's settings (e.g. VISPOD_GENERATOR_PERCEPTION__OBJECT_MIN_SCORE)."""

    objects: bool = True
    text: bool = True
    labels: bool = True
    object_min_score: float = Field(default_factory=lambda: _calibrated("objects"), ge=0.0, le=1.0)
    label_min_score: float = Field(default_factory=lambda: _calibrated("labels"), ge=0.0, le=1.0)
    text_min_score: float = Field(default_factory=lambda: _calibrated("text"), ge=0.0, le=1.0)
    max_objects: int = Field(default=12, ge=0, le=100)
    max_labels: int = Field(default=2, ge=0, le=10)
    max_texts: int = Field(default=6, ge=0, le=50)
    # Photos' facts kept in memory by content (sha256 of the bytes and these settings).
    cache_size: int = Field(default=512, ge=0)
    # onnxruntime threads for OCR (the detector and classifier use their libraries' own pools).
    threads: int = Field(default=2, ge=1, le=64)
