"""OpenAI-compatible chat completions (OpenAI GPT models, vLLM): POST {base}/chat/completions."""

from __future__ import annotations

from typing import Any

from vispod.common.llm_server import bearer, chat_messages
from vispod.judge.backends.base import Completion, JudgePrompt
from vispod.judge.backends.http import BadResponse, HttpJudge


class OpenAIChatJudge(HttpJudge):
    kind = "openai"

    def __init__(self, name: str, model: str, *, json_mode: bool, **kwargs: Any) -> None:
        super().__init__(name, model, **kwargs)
        self.json_mode = json_mode

    def request(self, prompt: JudgePrompt) -> tuple[str, dict[str, str], dict[str, Any]]:
        urls = [im.data_url() for im in prompt.images] if self.accepts_images else []
        body: dict[str, Any] = {
            "model": self.model,
            "messages": chat_messages(prompt.system, prompt.user, urls, images_first=False),
            # max_completion_tokens: the current name (reasoning models reject max_tokens); vLLM takes both.
            "max_completion_tokens": self.max_tokens,
        }
        if prompt.attempt == 0 and self.temperature is not None:
            body["temperature"] = self.temperature
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return f"{self.base_url}/chat/completions", bearer(self._api_key), body

    def parse(self, body: Any) -> Completion:
        return parse_chat_completion(body)


def parse_chat_completion(body: Any) -> Completion:
    """An OpenAI-style chat completion's text and token counts (OpenAI, vLLM, TGI)."""
    message = body["choices"][0]["message"]
    text = message.get("content")
    if not isinstance(text, str):
        raise BadResponse("choices[0].message.content is not a string")
    usage = body.get("usage") or {}
    return Completion(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
