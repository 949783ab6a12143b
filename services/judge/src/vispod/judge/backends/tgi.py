"""TGI through huggingface_hub.InferenceClient (TGI's maintained client) against a base URL.

Route "chat" (default): TGI's /v1/chat/completions, images as OpenAI-style image_url parts.
Route "generate": TGI's native text generation (POST / with {"inputs", "parameters"}), for models
served without a chat template; the system and user prompts are joined, and images go inside
`inputs` as markdown data-URL images, as TGI's vision models expect. Images are read only when TGI
serves a vision model (setting tgi_images). The client never asks the Hub anything: huggingface_hub would
otherwise fetch an "agent harnesses" registry from huggingface.co to build its User-Agent on the first call.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import InferenceClient
from huggingface_hub import constants as hf_constants

from vispod.common.http_retry import Retry
from vispod.common.llm_server import chat_messages, tgi_errors
from vispod.judge.backends.base import Completion, JudgeBackendError, JudgePrompt, RemoteJudge
from vispod.judge.images import data_url


class TGIJudge(RemoteJudge):
    kind = "tgi"

    def __init__(self, name: str, model: str, *, route: str = "chat", **kwargs: Any) -> None:
        super().__init__(name, model, **kwargs)
        if route not in ("chat", "generate"):
            raise ValueError(f"TGI route must be chat or generate, not {route!r}")
        self.route = route
        hf_constants.HF_HUB_DISABLE_TELEMETRY = True  # read at call time (HF_HUB_OFFLINE would refuse TGI calls too)
        self._client = InferenceClient(base_url=self.base_url, api_key=self._api_key, timeout=self.timeout_s)

    def _messages(self, prompt: JudgePrompt) -> list[dict[str, Any]]:
        urls = [data_url(im) for im in prompt.images] if self.accepts_images else []
        return chat_messages(prompt.system, prompt.user, urls, images_first=False)

    def _call(self, messages: list[dict[str, Any]], prompt: JudgePrompt) -> Completion:
        # TGI rejects temperature 0: near-greedy first, sampling on the retry.
        temperature = max(self.temperature, 0.01) if prompt.attempt == 0 else 0.7
        if self.route == "generate":
            images = "".join(f"![]({data_url(im)})" for im in prompt.images) if self.accepts_images else ""
            out = self._client.text_generation(
                f"{images}{prompt.system}\n\n{prompt.user}\n\nAnswer:",
                max_new_tokens=self.max_tokens,
                temperature=temperature,
                details=True,
                decoder_input_details=True,
            )
            details = out.details
            return Completion(
                out.generated_text,
                len(details.prefill or []) if details else 0,
                int(details.generated_tokens) if details else 0,
            )
        out = self._client.chat_completion(
            messages, model=self.model or None, max_tokens=self.max_tokens, temperature=temperature
        )
        text = out.choices[0].message.content
        if not isinstance(text, str):
            raise TypeError("message content is not a string")
        usage = out.usage
        return Completion(
            text, int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)
        )

    def complete(self, prompt: JudgePrompt) -> Completion:
        messages = self._messages(prompt)

        def attempt() -> Completion:
            try:
                with tgi_errors(lambda status, _detail: JudgeBackendError(f"{self.name}: HTTP {status}")):
                    return self._call(messages, prompt)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
                raise Retry(f"bad response: {type(exc).__name__}", reason="bad_response") from exc

        return self.with_retries(attempt)
