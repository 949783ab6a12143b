"""The random-weights marker: a model folder built with random weights carries `vispod_random_weights.json`,
and every consumer of its outputs reports them as drawn by random weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RANDOM_WEIGHTS_MARKER = "vispod_random_weights.json"


def write_marker(model_dir: Path | str, **info: Any) -> Path:
    """Marks `model_dir` as random-initialised; `info` (builder, seed, ...) is kept beside the flag."""
    path = Path(model_dir) / RANDOM_WEIGHTS_MARKER
    path.write_text(json.dumps({"random_weights": True, **info}), encoding="utf-8")
    return path


def has_random_weights(model_dir: Path | str) -> bool:
    """True when `model_dir` carries the marker (an unreadable marker counts: do not trust those weights)."""
    marker = Path(model_dir) / RANDOM_WEIGHTS_MARKER
    if not marker.is_file():
        return False
    try:
        return bool(json.loads(marker.read_text(encoding="utf-8")).get("random_weights", True))
    except (OSError, ValueError):
        return True
