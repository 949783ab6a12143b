"""One engine's adapters kept in step with the lifecycle: verified versions from the store → a shared volume → vLLM.

vLLM loads LoRA adapters at run time from a path *it* reads (vispod.common.llm_server.LoraServer). Each round:
1. the lifecycle (the generator's ListAdapters) says which versions the engine must hold: active, canary, the
   previous active and the newest candidates (vispod.common.adapter_store.retention — the same rule as TGI's
   rollout), so new or rejected candidates can never push out what default traffic is served by;
2. each held version not loaded is fetched through `AdapterStore.fetch` (signature + every sha256) into
   `<dest>/<name>/<version>` (a copy found there after a restart is re-hashed before it is trusted) and loaded
   under its id (`name@version`, the model name the generator sends);
3. what the engine has loaded and no longer holds is unloaded, and its copy removed.
The generator routes to an adapter, and the gate evaluates a candidate, only once the engine lists it.

Failures change nothing loaded: a store outage delays new versions; a lifecycle that cannot be read (generator
unreachable) loads and unloads nothing; a version the store rejects is never loaded (and counted).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from vispod.adaptersync import metrics
from vispod.adaptersync.lifecycle import LifecycleUnavailable
from vispod.common.adapter_store.key_names import tensor_names, unloadable
from vispod.common.adapter_store.objects import StoreUnavailable
from vispod.common.adapter_store.retention import DEFAULT_CANDIDATE_SLOTS, LifecycleView, held_adapters
from vispod.common.adapter_store.store import AdapterStore, StoreRejected
from vispod.common.artifacts import sha256_file
from vispod.common.base_identity import digest_mismatch
from vispod.common.llm_server import EngineRefused, LoraServer
from vispod.common.signing import Keyring

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    held: tuple[str, ...] = ()
    loaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)   # adapter id → reason (never loaded)
    store_unavailable: bool = False
    lifecycle_unavailable: bool = False


def check_names(folder: Path, engine: str) -> None:
    """Every LoRA tensor named the way `engine` loads it: one it would skip silently makes the version unusable."""
    try:
        bad = unloadable(tensor_names(folder / "adapter_model.safetensors"), engine)
    except (OSError, ValueError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise StoreRejected("bad_weights", str(exc)) from exc
    if bad:
        shutil.rmtree(folder, ignore_errors=True)
        raise StoreRejected("bad_key_names", f"{engine} would not load {len(bad)} tensor(s), e.g. {bad[0]}")


def local_copy(store: AdapterStore, keyring: Keyring, dest: Path, name: str, version: str) -> Path:
    """A verified folder for name@version under `dest`: a copy already there is re-hashed against the signed
    manifest; anything that does not verify is replaced by a fresh verified fetch."""
    folder = Path(dest) / name / version
    if folder.exists():
        manifest, _ = store.manifest(name, version, keyring)
        present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        if present == sorted(manifest["files"]) and all(
                sha256_file(folder / f) == d for f, d in manifest["files"].items()):
            return folder
        log.warning("local adapter copy does not verify: fetching it again", extra={"adapter_id": f"{name}@{version}"})
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    store.fetch(name, version, folder, keyring)
    return folder


class AdapterSync:
    def __init__(self, store: AdapterStore, keyring: Keyring, dest: Path, engine: LoraServer,
                 lifecycle: Callable[[], LifecycleView], *, candidate_slots: int = DEFAULT_CANDIDATE_SLOTS,
                 names: list[str] | None = None, base_model_digest: str = "") -> None:
        self.store, self.keyring, self.engine, self.lifecycle = store, keyring, engine, lifecycle
        self.dest = Path(dest)
        self.candidate_slots = candidate_slots
        self.names = frozenset(names or ())
        self.base_model_digest = base_model_digest
        self._rejected: dict[str, str] = {}

    def check_base(self, name: str, version: str) -> None:
        """The signed manifest's base must be the served one (by content), before anything is fetched or loaded."""
        if not self.base_model_digest:
            return
        manifest, _ = self.store.manifest(name, version, self.keyring)
        if why := digest_mismatch(self.base_model_digest, str(manifest.get("base_model_revision", ""))):
            raise StoreRejected("base_model_mismatch", why)

    def ours(self, adapter_id: str) -> bool:
        return not self.names or adapter_id.split("@", 1)[0] in self.names

    def reconcile(self) -> SyncReport:
        report = SyncReport(rejected=dict(self._rejected))
        try:
            view = self.lifecycle()
        except LifecycleUnavailable as exc:
            log.warning("lifecycle unknown: keeping the loaded adapters", extra={"error": str(exc)})
            report.lifecycle_unavailable = True
            return report
        report.held = tuple(a for a in held_adapters(view, self.candidate_slots) if self.ours(a))
        loaded = self.engine.adapters()
        for adapter_id in report.held:
            if adapter_id in loaded or adapter_id in self._rejected:
                continue
            name, _, version = adapter_id.partition("@")
            try:
                self.check_base(name, version)
                path = local_copy(self.store, self.keyring, self.dest, name, version)
                check_names(path, "vllm")
                self.engine.load(adapter_id, path)
            except StoreRejected as exc:
                self._rejected[adapter_id] = report.rejected[adapter_id] = exc.reason
                metrics.REJECTED.inc()
                log.error("adapter version rejected: not loaded", extra={"adapter_id": adapter_id,
                                                                          "reason": exc.reason, "error": exc.detail})
                continue
            except StoreUnavailable as exc:
                report.store_unavailable = True
                log.warning("adapter store unavailable: the version waits", extra={"adapter_id": adapter_id,
                                                                                   "error": str(exc)})
                continue
            report.loaded.append(adapter_id)
            log.info("adapter synced", extra={"adapter_id": adapter_id})
        for adapter_id in sorted(a for a in loaded if self.ours(a) and a not in report.held):
            if self.engine.unload(adapter_id):
                name, _, version = adapter_id.partition("@")
                shutil.rmtree(self.dest / name / version, ignore_errors=True)
                report.unloaded.append(adapter_id)
        metrics.HELD.set(len(report.held))
        return report

    def round(self) -> SyncReport | None:
        """One reconcile, counted by outcome; an engine that is (re)starting is waited for."""
        try:
            report = self.reconcile()
        except (httpx.HTTPError, ValueError, EngineRefused) as exc:
            metrics.ROUNDS.labels("engine_unreachable").inc()
            log.warning("engine not reachable or refused a load: retrying", extra={"error": str(exc)})
            return None
        outcome = ("lifecycle_unavailable" if report.lifecycle_unavailable
                   else "store_unavailable" if report.store_unavailable else "ok")
        metrics.ROUNDS.labels(outcome).inc()
        if outcome == "ok":
            metrics.LAST_SUCCESS.set(time.time())
        return report

    def run(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.is_set():
            self.round()
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


def fetch_once(store: AdapterStore, keyring: Keyring, dest: Path, lora_adapters: str) -> int:
    """TGI's init container: every version TGI will load, verified into `dest`; 1 if any failed (a failed init
    container keeps the old TGI pods serving)."""
    failed = 0
    for name, version in lora_adapter_ids(lora_adapters):
        try:
            check_names(local_copy(store, keyring, dest, name, version), "tgi")
        except (StoreRejected, StoreUnavailable) as exc:
            log.error("adapter not fetched", extra={"adapter_id": f"{name}@{version}", "error": str(exc)})
            failed += 1
    return 1 if failed else 0
