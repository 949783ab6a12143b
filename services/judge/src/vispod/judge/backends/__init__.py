"""Judge backends behind one interface (JudgeBackend.complete), built from a spec such as 'openai:gpt-4o'."""

from __future__ import annotations

from vispod.judge.backends.anthropic_messages import AnthropicJudge
from vispod.judge.backends.base import (
    Completion,
    JudgeBackend,
    JudgeBackendError,
    JudgeImage,
    JudgePrompt,
    RetryPolicy,
)
from vispod.judge.backends.gemini import GeminiJudge
from vispod.judge.backends.local import LocalJudge
from vispod.judge.settings import JudgeSettings, parse_judge_spec

__all__ = [
    "Completion",
    "JudgeBackend",
    "JudgeBackendError",
    "JudgeImage",
    "JudgePrompt",
    "RetryPolicy",
    "build_backend",
]


def _key(secret: object) -> str | None:
    return secret.get_secret_value() if secret is not None else None  # type: ignore[attr-defined]


def _api_options(kind: str, settings: JudgeSettings) -> tuple[type[JudgeBackend], dict[str, object]]:
    """The backend class of an API kind, and the options only that kind takes. The openai and tgi modules are
    imported here: they bring huggingface_hub's HTTP stack, which only deployments using them pay for."""
    if kind in ("openai", "vllm"):
        from vispod.judge.backends.openai_chat import OpenAIChatJudge

        return OpenAIChatJudge, {"json_mode": settings.openai_json_mode}
    if kind == "anthropic":
        return AnthropicJudge, {"version": settings.anthropic_version}
    if kind == "gemini":
        return GeminiJudge, {}
    from vispod.judge.backends.tgi import TGIJudge

    return TGIJudge, {"route": settings.tgi_route}


def build_backend(spec: str, settings: JudgeSettings, retry: RetryPolicy | None = None) -> JudgeBackend:
    """A backend for one configured judge spec; keys and URLs come from settings (<kind>_base_url, <kind>_api_key)."""
    kind, model = parse_judge_spec(spec)
    if kind == "local":
        return LocalJudge(
            spec,
            model_path=settings.local_model_path,
            gguf_file=settings.local_gguf_file,
            max_new_tokens=settings.local_max_new_tokens,
            max_input_tokens=settings.local_max_input_tokens,
            threads=settings.local_threads,
            prefill=settings.local_prefill,
        )
    retry = retry or RetryPolicy(
        max_retries=settings.max_retries,
        backoff_base_s=settings.backoff_base_s,
        backoff_max_s=settings.backoff_max_s,
        max_retry_after_s=settings.max_retry_after_s,
    )
    # Per-kind switch for images: OpenAI, Anthropic and Gemini read them; vLLM and TGI only with a vision model.
    reads_images = {"vllm": settings.vllm_images, "tgi": settings.tgi_images}.get(kind, True)
    cls, extra = _api_options(kind, settings)
    return cls(  # type: ignore[call-arg]
        spec,
        model,
        base_url=getattr(settings, f"{kind}_base_url"),
        api_key=_key(getattr(settings, f"{kind}_api_key")),
        accepts_images=settings.send_images and settings.max_images > 0 and reads_images,
        timeout_s=settings.request_timeout_s,
        retry=retry,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        **extra,
    )
