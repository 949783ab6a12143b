"""Model files for the in-process backends: an embedded model's name or a path (vispod.common.embedded_models)."""

from __future__ import annotations

from pathlib import Path

from vispod.common.embedded_models import ModelNotFound, resolve_gguf
from vispod.generator.backends.base import BackendError


def resolve_model_path(model_path: Path | str | None) -> Path:
    try:
        return resolve_gguf(model_path or "smollm2")
    except ModelNotFound as exc:
        raise BackendError(str(exc)) from exc
