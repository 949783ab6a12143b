"""Gemini generateContent: POST {base}/v1beta/models/{model}:generateContent with x-goog-api-key."""

from __future__ import annotations

from typing import Any

from vispod.judge.backends.base import Completion, JudgePrompt
from vispod.judge.backends.http import BadResponse, HttpJudge


class GeminiJudge(HttpJudge):
    kind = "gemini"

    def request(self, prompt: JudgePrompt) -> tuple[str, dict[str, str], dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if self.accepts_images:
            parts += [{"inlineData": {"mimeType": im.mime, "data": im.b64()}} for im in prompt.images]
        parts.append({"text": prompt.user})
        config: dict[str, Any] = {"maxOutputTokens": self.max_tokens, "responseMimeType": "application/json"}
        if prompt.attempt == 0:
            config["temperature"] = self.temperature
        body = {
            "systemInstruction": {"parts": [{"text": prompt.system}]},
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": config,
        }
        headers = {"x-goog-api-key": self._api_key} if self._api_key else {}
        return f"{self.base_url}/v1beta/models/{self.model}:generateContent", headers, body

    def parse(self, body: Any) -> Completion:
        candidates = body.get("candidates") or []
        if not candidates:
            reason = (body.get("promptFeedback") or {}).get("blockReason", "no candidates")
            raise BadResponse(f"no candidates ({reason})")
        parts = (candidates[0].get("content") or {}).get("parts") or []
        # Thinking models add parts flagged "thought": the verdict is in the others.
        text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
        usage = body.get("usageMetadata") or {}
        return Completion(text, int(usage.get("promptTokenCount", 0)), int(usage.get("candidatesTokenCount", 0)))
