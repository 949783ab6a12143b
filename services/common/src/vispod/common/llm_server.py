"""The one client of vispod's LLM servers (vLLM, TGI, llama.cpp's server): chat messages, runtime LoRA, TGI errors.

- `chat_messages`: OpenAI-style messages (system, then one user message with image parts and the text); text
  only, the user content is a plain string (chat templates of text models concatenate `content` as a string).
- `LoraServer`: vLLM's runtime LoRA API (`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`): `GET /v1/models` lists the
  base model and the loaded adapters (an adapter has a `parent`), `POST /v1/load_lora_adapter {lora_name,
  lora_path}` loads a folder the *server* reads, `/v1/unload_lora_adapter` drops one. The API key (vLLM's
  `--api-key`) goes in a bearer header and is never logged.
- `transport_errors`, `check_answer`: the one mapping of every LLM-server call (all plain httpx: TGI too, since
  huggingface_hub's InferenceClient refuses every request, TGI's included, while HF_HUB_OFFLINE=1, which every
  image sets) onto the retry policy's terms: a retryable status → `Retry`, a timeout → TimeoutError, a broken
  connection → ConnectionError, any other error status → the caller's own error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from vispod.common.http_retry import check_status

log = logging.getLogger(__name__)


def chat_messages(system: str, user: str, image_urls: Sequence[str] = (), *,
                  images_first: bool = True) -> list[dict[str, Any]]:
    """System message, then the user's: images (data URLs, in story order) before the text, or after it with
    `images_first=False`; without images the user content is a plain string."""
    if not image_urls:
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]
    images = [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
    text = [{"type": "text", "text": user}]
    return [{"role": "system", "content": system},
            {"role": "user", "content": images + text if images_first else text + images}]


def bearer(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class EngineRefused(RuntimeError):
    """The server answered a LoRA load with an error (not 'already loaded'); the message carries its answer."""

    def __init__(self, adapter_id: str, status: int, detail: str) -> None:
        super().__init__(f"engine refused adapter {adapter_id}: HTTP {status} {detail[:200]}")
        self.adapter_id, self.status, self.detail = adapter_id, status, detail


class LoraServer:
    """vLLM's model listing and runtime LoRA API on one httpx client (the caller's, or one made here)."""

    def __init__(self, url: str = "", api_key: str | None = None, timeout_s: float = 60.0,
                 client: httpx.Client | None = None) -> None:
        self._owned = client is None
        self.client = client or httpx.Client(base_url=url.rstrip("/"), headers=bearer(api_key), timeout=timeout_s)

    def models(self) -> list[dict[str, Any]]:
        r = self.client.get("/v1/models")
        r.raise_for_status()
        data = r.json().get("data", [])
        if not isinstance(data, list):
            raise ValueError("/v1/models: data is not a list")
        return data

    def listed(self) -> frozenset[str]:
        """Every model id the server serves (the base model and its adapters)."""
        return frozenset(m["id"] for m in self.models())

    def adapters(self) -> frozenset[str]:
        """The adapters loaded now: the entries that have a parent (the base model has none)."""
        return frozenset(m["id"] for m in self.models() if m.get("parent"))

    def load(self, adapter_id: str, path: Path | str,
             on_status: Callable[[httpx.Response], None] | None = None) -> None:
        """Loads `path` under `adapter_id`; an adapter already loaded counts as loaded. `on_status` sees every
        answer first (e.g. to turn an overload into a retry)."""
        r = self.client.post("/v1/load_lora_adapter", json={"lora_name": adapter_id, "lora_path": str(path)})
        if on_status is not None:
            on_status(r)
        if r.status_code >= 400 and "already" not in r.text.lower():
            raise EngineRefused(adapter_id, r.status_code, r.text)

    def unload(self, adapter_id: str) -> bool:
        """Best effort (an adapter left loaded only costs memory): False when the server did not unload it."""
        try:
            r = self.client.post("/v1/unload_lora_adapter", json={"lora_name": adapter_id})
        except httpx.HTTPError as exc:
            log.warning("engine did not unload adapter", extra={"adapter_id": adapter_id, "error": str(exc)})
            return False
        if r.status_code >= 400:
            log.warning("engine did not unload adapter", extra={"adapter_id": adapter_id, "status": r.status_code})
            return False
        return True

    def close(self) -> None:
        if self._owned:
            self.client.close()


@contextmanager
def transport_errors() -> Iterator[None]:
    """Inside one attempt of an httpx call: a timeout becomes TimeoutError and a broken connection ConnectionError,
    the retry policy's terms for "try again"."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise TimeoutError(f"{type(exc).__name__}: {exc}") from exc
    except httpx.TransportError as exc:
        raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc


def check_answer(response: httpx.Response, rejected: Callable[[int, str], Exception],
                 detail: str | None = None) -> None:
    """Inside one attempt, on a server's answer: a retryable status raises `Retry` (with its Retry-After), any
    other error status `rejected(status, detail)`; a success returns. `detail` defaults to the body's start (a
    streamed answer's caller reads it first)."""
    if response.status_code < 400:
        return
    detail = response.text[:300] if detail is None else detail
    check_status(response.status_code, response.headers, detail)
    raise rejected(response.status_code, detail)
