"""The TGI way of taking adapters, on a real server: llama.cpp's OpenAI server (`python -m llama_cpp.server`)
gets its LoRA at start-up only (`--lora_path`), so a new adapter is a new server process.

`LlamaServerRollout` is the local stand-in for a TGI Deployment rollout (blue/green): the init step fetches
the version through the adapter store (signature + hashes) into the shared volume, converts it to GGUF, starts
a server with it, and switches over only once that server answers and lists the adapter; until then the old
server keeps serving the previous adapter. A store outage or a rejected version leaves the old server serving.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from vispod.adaptersync.sync import local_copy
from vispod.common.adapter_store import AdapterStore, StoreRejected, StoreUnavailable
from vispod.common.signing import Keyring
from vispod.devkit.local_kafka import free_port, stop_process
from vispod.generator.adapters.gguf_lora import cached_gguf, read_base

log = logging.getLogger(__name__)


class LlamaServerRollout:
    def __init__(self, store: AdapterStore, keyring: Keyring, model: Path, volume: Path, gguf_cache: Path,
                 retry_s: float = 1.0) -> None:
        self.store, self.keyring, self.model = store, keyring, model
        self.volume, self.gguf_cache, self.retry_s = volume, gguf_cache, retry_s
        self.base_url = ""
        self.current: str | None = None
        self.process: subprocess.Popen | None = None
        self.events: list[tuple[str, str]] = []      # (adapter id, "serving" | "rejected:<reason>" | "delayed")
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # --- the rollout contract (backends.tgi_rollout.AdapterRollout) -----------------------------------------
    def hold(self, adapter_ids: tuple[str, ...]) -> bool:
        """llama.cpp's server takes one LoRA: this stand-in serves the newest adapter of the held set, and starts
        a new server only when that is not the one it serves."""
        newest = adapter_ids[-1] if adapter_ids else None
        if newest is None or newest == self.current:
            return False
        t = threading.Thread(target=self._roll, args=(newest,), daemon=True)
        self._threads.append(t)
        t.start()
        return True

    def ready(self, max_age_s: float | None = None) -> frozenset[str]:
        with self._lock:
            return frozenset({self.current}) if self.current else frozenset()

    # ---------------------------------------------------------------------------------------------------
    def wait(self, timeout: float = 300.0) -> None:
        for t in self._threads:
            t.join(timeout)

    def _roll(self, adapter_id: str) -> None:
        name, version = adapter_id.split("@", 1)
        while not self._stop.is_set():
            try:  # the init container: nothing reaches the volume unverified
                folder = local_copy(self.store, self.keyring, self.volume, name, version)
                break
            except StoreRejected as exc:
                self.events.append((adapter_id, f"rejected:{exc.reason}"))
                return
            except StoreUnavailable:
                self.events.append((adapter_id, "delayed"))
                self._stop.wait(self.retry_s)
        else:
            return
        gguf = cached_gguf(folder, read_base(self.model), self.gguf_cache)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--lora_path", str(gguf),
             "--model_alias", adapter_id, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024",
             "--n_threads", "2", "--verbose", "False"],
            # No parent-death signal: it would fire when this rollout thread ends, not the test; close() stops it.
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ids = {m["id"] for m in httpx.get(f"{url}/v1/models", timeout=2).json()["data"]}
                if adapter_id in ids:
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        else:
            stop_process(proc, 10)
            self.events.append((adapter_id, "failed:server did not start"))
            return
        with self._lock:  # switch over, then retire the old server
            old, self.process, self.base_url, self.current = self.process, proc, url, adapter_id
        self.events.append((adapter_id, "serving"))
        if old is not None:
            stop_process(old, 10)

    def close(self) -> None:
        self._stop.set()
        self.wait(30)
        if self.process is not None:
            stop_process(self.process, 10)
