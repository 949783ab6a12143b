"""TGI over plain httpx against a base URL (not huggingface_hub's InferenceClient: it refuses every request, TGI's
included, while HF_HUB_OFFLINE=1, which every vispod image sets).

Route "chat" (default): TGI's /v1/chat/completions, images as OpenAI-style image_url parts.
Route "generate": TGI's native text generation (POST /generate with {"inputs", "parameters"}), for models
served without a chat template; the system and user prompts are joined, and images go inside
`inputs` as markdown data-URL images, as TGI's vision models expect. Images are read only when TGI
serves a vision model (setting tgi_images).
"""

from __future__ import annotations

from typing import Any

from vispod.common.llm_server import bearer, chat_messages
from vispod.judge.backends.base import Completion, JudgePrompt
from vispod.judge.backends.http import BadResponse, HttpJudge
from vispod.judge.backends.openai_chat import parse_chat_completion


class TGIJudge(HttpJudge):
    kind = "tgi"

    def __init__(self, name: str, model: str, *, route: str = "chat", **kwargs: Any) -> None:
        super().__init__(name, model, **kwargs)
        if route not in ("chat", "generate"):
            raise ValueError(f"TGI route must be chat or generate, not {route!r}")
        self.route = route

    def request(self, prompt: JudgePrompt) -> tuple[str, dict[str, str], dict[str, Any]]:
        # TGI rejects temperature 0: near-greedy first, sampling on the retry.
        temperature = max(self.temperature or 0.0, 0.01) if prompt.attempt == 0 else 0.7
        if self.route == "generate":
            images = "".join(f"![]({im.data_url()})" for im in prompt.images) if self.accepts_images else ""
            body: dict[str, Any] = {
                "inputs": f"{images}{prompt.system}\n\n{prompt.user}\n\nAnswer:",
                "parameters": {"max_new_tokens": self.max_tokens, "temperature": temperature, "details": True,
                               "decoder_input_details": True},
            }
            return f"{self.base_url}/generate", bearer(self._api_key), body
        urls = [im.data_url() for im in prompt.images] if self.accepts_images else []
        body = {"model": self.model or "tgi",
                "messages": chat_messages(prompt.system, prompt.user, urls, images_first=False),
                "max_tokens": self.max_tokens, "temperature": temperature}
        return f"{self.base_url}/v1/chat/completions", bearer(self._api_key), body

    def parse(self, body: Any) -> Completion:
        if self.route == "chat":
            return parse_chat_completion(body)
        text = body["generated_text"]
        if not isinstance(text, str):
            raise BadResponse("generated_text is not a string")
        details = body.get("details") or {}
        return Completion(text, len(details.get("prefill") or []), int(details.get("generated_tokens") or 0))
