"""An OpenAI-compatible `POST /v1/audio/speech` endpoint (OpenAI, or any server that speaks its API)."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request

import numpy as np

from vispod.voice.audio import resample
from vispod.voice.engines.base import EngineError

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAISpeechEngine:
    name = "openai"

    def __init__(self, base_url: str, model: str, voices: list[str], api_key: str | None = None,
                 timeout_s: float = 60.0, max_retries: int = 2) -> None:
        self.url = base_url.rstrip("/") + "/audio/speech"
        self.model = model
        self._voices = list(voices)
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries

    def voices(self) -> list[str]:
        return list(self._voices)

    def synthesize(self, text: str, voice: str) -> np.ndarray:
        import soundfile as sf  # deferred: libsndfile, only when speaking

        body = json.dumps({"model": self.model, "input": text, "voice": voice, "response_format": "wav"}).encode()
        headers = {"Content-Type": "application/json", "Accept": "audio/wav"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    payload = response.read()
                break
            except urllib.error.HTTPError as exc:
                if exc.code not in _RETRY_STATUS or attempt == self.max_retries:
                    detail = exc.read()[:200].decode(errors="replace")
                    raise EngineError(f"speech endpoint answered {exc.code}: {detail}") from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.max_retries:
                    raise EngineError(f"speech endpoint unreachable: {exc}") from exc
            time.sleep(min(8.0, 0.5 * 2**attempt))
        try:
            data, rate = sf.read(io.BytesIO(payload), dtype="float32")
        except Exception as exc:  # soundfile raises its own LibsndfileError
            raise EngineError(f"speech endpoint returned no readable WAV ({len(payload)} bytes)") from exc
        data = np.asarray(data)
        return resample(data.mean(axis=1) if data.ndim == 2 else data, rate)

    def close(self) -> None:
        pass
