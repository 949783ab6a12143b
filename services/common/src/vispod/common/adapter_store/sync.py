"""The adapter-sync container of a vLLM pod: verified versions from the store → a shared volume → vLLM.

vLLM loads LoRA adapters at run time (`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`: `POST /v1/load_lora_adapter
{lora_name, lora_path}`, `/v1/unload_lora_adapter`, loaded ones listed by `GET /v1/models`) from a path *it* can
read. This loop keeps the newest `keep` versions of each configured adapter name loaded: it fetches each through
`AdapterStore.fetch` (signature + every sha256) into `<dest>/<name>/<version>`, re-hashes a copy found there after
a restart before trusting it, loads it under its id (`name@version`, the model name the generator sends), and
unloads what fell out of the set. The generator routes to an adapter only once vLLM lists it.

A store outage changes nothing: what is loaded stays loaded, new versions wait; nothing unverified is loaded.
`--once` (a TGI init container): fetch the versions named in LORA_ADAPTERS and exit, without an engine.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from vispod.common.adapter_store.objects import StoreUnavailable
from vispod.common.adapter_store.settings import AdapterStoreSettings
from vispod.common.adapter_store.store import AdapterStore, StoreRejected
from vispod.common.artifacts import sha256_file
from vispod.common.signing import Keyring

log = logging.getLogger(__name__)
_NUMBER = re.compile(r"(\d+)")


def version_order(version: str) -> list:
    """'10' after '9', '20261201T…' after '20261130T…': digits compare as numbers."""
    return [int(p) if p.isdigit() else p for p in _NUMBER.split(version)]


class VLLMAdapters:
    """vLLM's runtime LoRA API."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s)

    def loaded(self) -> set[str]:
        """Adapter ids vLLM serves now: the /v1/models entries that have a parent (the base model has none)."""
        r = self._client.get("/v1/models")
        r.raise_for_status()
        return {m["id"] for m in r.json().get("data", []) if m.get("parent")}

    def load(self, adapter_id: str, path: Path) -> None:
        r = self._client.post("/v1/load_lora_adapter", json={"lora_name": adapter_id, "lora_path": str(path)})
        if r.status_code >= 400 and "already" not in r.text.lower():
            raise RuntimeError(f"vLLM refused {adapter_id}: HTTP {r.status_code} {r.text[:200]}")

    def unload(self, adapter_id: str) -> None:
        r = self._client.post("/v1/unload_lora_adapter", json={"lora_name": adapter_id})
        if r.status_code >= 400:
            log.warning("vLLM did not unload adapter", extra={"adapter_id": adapter_id, "status": r.status_code})

    def close(self) -> None:
        self._client.close()


@dataclass
class SyncReport:
    loaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)   # adapter id → reason (never loaded)
    store_unavailable: bool = False


class AdapterSync:
    def __init__(self, store: AdapterStore, keyring: Keyring, dest: Path, names: list[str], keep: int = 4,
                 engine: VLLMAdapters | None = None) -> None:
        self.store, self.keyring, self.engine = store, keyring, engine
        self.dest = Path(dest)
        self.names = names
        self.keep = keep
        self._rejected: dict[str, str] = {}

    def desired(self) -> list[tuple[str, str]]:
        """The newest `keep` published versions of each name that were not rejected here (a rejected version
        takes no slot); StoreUnavailable when the store is down."""
        wanted = []
        for name in self.names:
            usable = [v for v in self.store.versions(name) if f"{name}@{v}" not in self._rejected]
            wanted += [(name, v) for v in sorted(usable, key=version_order)[-self.keep:]]
        return wanted

    def local_copy(self, name: str, version: str) -> Path:
        """A verified folder for name@version: a copy already here is re-hashed against the signed manifest;
        anything that does not verify is replaced by a fresh verified fetch."""
        folder = self.dest / name / version
        if folder.exists():
            manifest, _ = self.store.manifest(name, version, self.keyring)
            present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
            if present == sorted(manifest["files"]) and all(
                    sha256_file(folder / f) == d for f, d in manifest["files"].items()):
                return folder
            log.warning("local adapter copy does not verify: fetching it again", extra={
                "adapter_id": f"{name}@{version}"})
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.store.fetch(name, version, folder, self.keyring)
        return folder

    def reconcile(self) -> SyncReport:
        report = SyncReport(rejected=dict(self._rejected))
        try:
            wanted = self.desired()
        except StoreUnavailable as exc:
            log.warning("adapter store unavailable: keeping the loaded adapters", extra={"error": str(exc)})
            report.store_unavailable = True
            return report
        loaded = self.engine.loaded() if self.engine is not None else set()
        for name, version in wanted:
            adapter_id = f"{name}@{version}"
            try:
                if adapter_id in loaded:
                    continue
                path = self.local_copy(name, version)
                if self.engine is not None:
                    self.engine.load(adapter_id, path)
                report.loaded.append(adapter_id)
                log.info("adapter synced", extra={"adapter_id": adapter_id, "engine": self.engine is not None})
            except StoreRejected as exc:
                self._rejected[adapter_id] = report.rejected[adapter_id] = exc.reason
                log.error("adapter version rejected: not loaded", extra={"adapter_id": adapter_id,
                                                                          "reason": exc.reason, "error": exc.detail})
            except StoreUnavailable as exc:
                report.store_unavailable = True
                log.warning("adapter store unavailable: the version waits", extra={"adapter_id": adapter_id,
                                                                                   "error": str(exc)})
        keep = {f"{n}@{v}" for n, v in wanted}
        ours = {a for a in loaded if a.split("@", 1)[0] in self.names}
        for adapter_id in sorted(ours - keep):
            assert self.engine is not None
            self.engine.unload(adapter_id)
            name, version = adapter_id.split("@", 1)
            shutil.rmtree(self.dest / name / version, ignore_errors=True)
            report.unloaded.append(adapter_id)
        return report

    def run(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.reconcile()
            except (httpx.HTTPError, RuntimeError) as exc:  # the engine is starting or restarting
                log.warning("engine not reachable: retrying", extra={"error": str(exc)})
            stop.wait(interval_s)


def lora_adapter_ids(value: str) -> list[tuple[str, str]]:
    """(name, version) of each `name@version=/path` (or bare id) entry of TGI's LORA_ADAPTERS."""
    out = []
    for entry in filter(None, (e.strip() for e in value.split(","))):
        adapter_id = entry.split("=", 1)[0]
        name, _, version = adapter_id.partition("@")
        if not version:
            raise ValueError(f"LORA_ADAPTERS entry {entry!r} is not name@version[=path]")
        out.append((name, version))
    return out


def main(argv: list[str] | None = None) -> int:
    from vispod.common.logging import configure_logging

    parser = argparse.ArgumentParser(prog="python -m vispod.common.adapter_store.sync")
    parser.add_argument("--dest", type=Path, required=True, help="the shared volume the engine reads")
    parser.add_argument("--engine-url", default="http://127.0.0.1:8000", help="vLLM's HTTP address")
    parser.add_argument("--names", default="", help="adapter names to keep loaded (comma-separated)")
    parser.add_argument("--keep", type=int, default=4, help="newest versions per name kept loaded")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--once", action="store_true",
                        help="fetch the versions in $LORA_ADAPTERS (TGI init container) and exit")
    args = parser.parse_args(argv)
    configure_logging("adapter-sync", os.environ.get("VISPOD_LOG_LEVEL", "INFO"))
    settings = AdapterStoreSettings()
    store, keyring = settings.open(), settings.keyring()
    if args.once:
        failed = 0
        for name, version in lora_adapter_ids(os.environ.get("LORA_ADAPTERS", "")):
            sync = AdapterSync(store, keyring, args.dest, [name])
            try:
                sync.local_copy(name, version)
            except (StoreRejected, StoreUnavailable) as exc:
                log.error("adapter not fetched", extra={"adapter_id": f"{name}@{version}", "error": str(exc)})
                failed += 1
        return 1 if failed else 0  # a failed init container keeps the old TGI pods serving
    stop = threading.Event()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine = VLLMAdapters(args.engine_url, os.environ.get("VLLM_API_KEY") or None)
    try:
        AdapterSync(store, keyring, args.dest, [n for n in args.names.split(",") if n], args.keep,
                    engine).run(args.interval, stop)
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
