"""The adapter-sync service: `python -m vispod.adaptersync` (vLLM's sidecar) or with
VISPOD_ADAPTERSYNC_ONCE=true (TGI's init container: fetch LORA_ADAPTERS, verified, and exit)."""

from __future__ import annotations

from vispod.adaptersync.lifecycle import GeneratorLifecycle
from vispod.adaptersync.settings import AdapterSyncSettings
from vispod.adaptersync.sync import AdapterSync, fetch_once
from vispod.common.llm_server import LoraServer
from vispod.common.logging import configure_logging
from vispod.common.service import Service, Task, serve
from vispod.common.settings import load_settings


def build(settings: AdapterSyncSettings) -> Service[AdapterSync]:
    s = settings
    key = s.engine_api_key.get_secret_value() if s.engine_api_key else None
    engine = LoraServer(s.engine_url, key)
    lifecycle = GeneratorLifecycle(s.generator_addr, s.grpc_tls, s.rpc_timeout_s)
    sync = AdapterSync(s.adapter_store.open(), s.adapter_store.keyring(), s.dest, engine, lifecycle,
                       candidate_slots=s.candidate_slots, names=s.names, base_model_digest=s.base_model_digest)
    return Service(s, sync, tasks=[Task("adapter-sync", lambda stop: sync.run(s.interval_s, stop))],
                   closers=[engine.close, lifecycle.close])


def main() -> int:
    settings = load_settings(AdapterSyncSettings)
    if settings.once:
        configure_logging(settings.service_name, settings.log_level)
        store = settings.adapter_store
        return fetch_once(store.open(), store.keyring(), settings.dest, settings.lora_adapters)
    serve(AdapterSyncSettings, build)
    return 0
