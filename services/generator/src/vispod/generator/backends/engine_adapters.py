"""Which adapters a remote engine can serve right now, as the engine itself says — on every replica.

vLLM (and every OpenAI-compatible server that loads LoRA adapters) lists them in `GET /v1/models`, each with a
`parent` (the base model has none); a server whose adapter is fixed at start-up (llama.cpp's server with
`--lora_path` and `--model_alias <adapter id>`) lists it as its model. The generator routes to an adapter only
once it is listed there: until the engine pod's adapter-sync container has loaded a verified copy (or the
restarted server answers), requests stay on the adapter that was serving.

With several replicas behind one Service, each pod's adapter-sync loads on its own schedule, and a request may
reach any of them: an adapter counts as listed only when *every* replica lists it (`replicas`: the pods' own
addresses, e.g. a headless Service name resolved on each refresh, which lists ready pods only), so a request never
lands on a replica that lacks its adapter. When a replica cannot be asked, the last answer stands.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import httpx

from vispod.common.llm_server import LoraServer

log = logging.getLogger(__name__)
MISS_INTERVAL_S = 0.05


def headless_replicas(url: str) -> Callable[[], list[str]]:
    """The URL of every address the URL's host resolves to (a headless Service: one per ready pod)."""
    parts = urlsplit(url)

    def resolve() -> list[str]:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname or "", port, type=socket.SOCK_STREAM)
        hosts = sorted({info[4][0] for info in infos})
        return [urlunsplit((parts.scheme, f"[{h}]:{port}" if ":" in h else f"{h}:{port}", parts.path, "", ""))
                for h in hosts]

    return resolve


class EngineAdapters:
    def __init__(self, server: LoraServer, ttl_s: float = 2.0,
                 replicas: Callable[[], list[str]] | None = None, api_key: str | None = None) -> None:
        self._server = server
        self.ttl_s = ttl_s
        self._replicas = replicas
        self._api_key = api_key
        self._ids: frozenset[str] = frozenset()
        self._at = float("-inf")
        self._lock = threading.Lock()

    def _listed(self) -> frozenset[str]:
        if self._replicas is None:
            return self._server.listed()
        urls = self._replicas()
        if not urls:
            raise ValueError("no engine replica found")
        common: frozenset[str] | None = None
        for url in urls:
            server = LoraServer(url, self._api_key, timeout_s=10.0)
            try:
                ids = server.listed()
            finally:
                server.close()
            common = ids if common is None else common & ids
        return common or frozenset()

    def refresh(self) -> frozenset[str]:
        """Asks the engine; on failure keeps the last answer (the request itself will then fail or succeed)."""
        try:
            ids = self._listed()  # adapter ids are name@version
        except (httpx.HTTPError, OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("engine did not list its adapters", extra={"error": str(exc)})
            return self._ids
        with self._lock:
            self._ids, self._at = ids, time.monotonic()
        return ids

    def has(self, adapter_id: str, fresh: bool = False) -> bool:
        """A listed adapter is believed for `ttl_s`; one not listed is asked about again (at most every
        `MISS_INTERVAL_S`): a lifecycle decision arriving just after the engine loaded it must not be vetoed by a
        stale answer, on any generator replica."""
        age = time.monotonic() - self._at
        if adapter_id in self._ids and not fresh and age < self.ttl_s:
            return True
        if fresh or age >= min(self.ttl_s, MISS_INTERVAL_S):
            return adapter_id in self.refresh()
        return adapter_id in self._ids
