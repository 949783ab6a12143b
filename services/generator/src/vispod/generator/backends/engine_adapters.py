"""Which adapters a remote engine can serve right now, as the engine itself says.

vLLM (and every OpenAI-compatible server that loads LoRA adapters) lists them in `GET /v1/models`, each with a
`parent` (the base model has none); a server whose adapter is fixed at start-up (llama.cpp's server with
`--lora_path` and `--model_alias <adapter id>`) lists it as its model. The generator routes to an adapter only
once it is listed there: until the engine pod's adapter-sync container has loaded a verified copy (or the
restarted server answers), requests stay on the adapter that was serving.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx

from vispod.common.llm_server import LoraServer

log = logging.getLogger(__name__)


class EngineAdapters:
    def __init__(self, server: LoraServer, ttl_s: float = 2.0) -> None:
        self._server = server
        self.ttl_s = ttl_s
        self._ids: frozenset[str] = frozenset()
        self._at = float("-inf")
        self._lock = threading.Lock()

    def refresh(self) -> frozenset[str]:
        """Asks the engine; on failure keeps the last answer (the request itself will then fail or succeed)."""
        try:
            ids = self._server.listed()  # adapter ids are name@version
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("engine did not list its adapters", extra={"error": str(exc)})
            return self._ids
        with self._lock:
            self._ids, self._at = ids, time.monotonic()
        return ids

    def has(self, adapter_id: str, fresh: bool = False) -> bool:
        if adapter_id in self._ids and not fresh and time.monotonic() - self._at < self.ttl_s:
            return True
        if fresh or time.monotonic() - self._at >= self.ttl_s:
            return adapter_id in self.refresh()
        return adapter_id in self._ids
