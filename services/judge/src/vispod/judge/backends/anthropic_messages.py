"""Anthropic Messages API: POST {base}/v1/messages with x-api-key and anthropic-version."""

from __future__ import annotations

from typing import Any

from vispod.judge.backends.base import Completion, JudgePrompt
from vispod.judge.backends.http import BadResponse, HttpJudge


class AnthropicJudge(HttpJudge):
    kind = "anthropic"

    def __init__(self, name: str, model: str, *, version: str, **kwargs: Any) -> None:
        super().__init__(name, model, **kwargs)
        self.version = version

    def request(self, prompt: JudgePrompt) -> tuple[str, dict[str, str], dict[str, Any]]:
        content: list[dict[str, Any]] = []
        if self.accepts_images:
            content += [
                {"type": "image", "source": {"type": "base64", "media_type": im.mime, "data": im.b64()}}
                for im in prompt.images
            ]
        content.append({"type": "text", "text": prompt.user})
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": prompt.system,
            "messages": [{"role": "user", "content": content}],
        }
        if prompt.attempt == 0:
            body["temperature"] = self.temperature
        headers = {"anthropic-version": self.version}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return f"{self.base_url}/v1/messages", headers, body

    def parse(self, body: Any) -> Completion:
        if body.get("type") == "error":
            raise BadResponse(str(body.get("error", {}).get("type", "error")))
        texts = [b["text"] for b in body["content"] if b.get("type") == "text"]
        if not texts:
            raise BadResponse("no text block in content")
        usage = body.get("usage") or {}
        return Completion("".join(texts), int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)))
