"""One interface over the inference backends (llama.cpp, local transformers, TGI, OpenAI-compatible/vLLM)."""

from __future__ import annotations

from vispod.generator.backends.base import (
    Backend,
    BackendError,
    BackendUnavailable,
    GenerationInput,
    GenerationStream,
)

__all__ = ["Backend", "BackendError", "BackendUnavailable", "GenerationInput", "GenerationStream", "make_backend"]


def make_backend(settings) -> Backend:  # settings: GeneratorSettings
    """The backend the settings name; imports only that backend's dependencies (llama.cpp, torch and
    transformers, or an HTTP client: each heavy, and optional per image), hence the imports in this function."""
    if settings.backend == "llamacpp":
        try:
            from vispod.generator.backends.llamacpp import LlamaCppBackend
        except ImportError as exc:
            raise BackendError(f"backend=llamacpp needs llama-cpp-python ({exc}); `make setup` compiles it — if that "
                               "failed, use backend=local (transformers)") from exc
        return LlamaCppBackend.from_settings(settings)
    if settings.backend == "local":
        from vispod.generator.backends.local import LocalBackend
        return LocalBackend.from_settings(settings)
    if settings.backend == "tgi":
        from vispod.generator.backends.tgi import TGIBackend
        return TGIBackend.from_settings(settings)
    if settings.backend == "openai":
        from vispod.generator.backends.openai import OpenAIBackend
        return OpenAIBackend.from_settings(settings)
    raise ValueError(f"unknown backend {settings.backend!r}")
