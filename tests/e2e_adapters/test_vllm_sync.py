"""vLLM's way: runtime loading through the pod's adapter-sync container, on a real model behind vLLM's API.

The trainer's signed versions sit on a real S3 server; the sync loop fetches and verifies the versions the
lifecycle holds into the shared volume and loads them into the engine; the generator's OpenAI backend only names
the adapter and routes to it once the engine lists it. A tampered version is never loaded; a store outage delays,
changes nothing loaded, and loses no version; a candidate that leaves the held set is unloaded, the active never."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from conftest import overwrite, publish_version, record, store_settings, variant
from vllm_api_engine import VLLMApiEngine

from vispod.adaptersync.sync import AdapterSync
from vispod.common.adapter_store import StoreUnavailable
from vispod.common.adapter_store.retention import LifecycleView
from vispod.common.adapter_store.store import blob_key
from vispod.common.artifacts import sha256_file
from vispod.common.embedded_models import resolve_gguf
from vispod.common.http_retry import RetryPolicy
from vispod.common.llm_server import LoraServer
from vispod.devkit.local_s3 import start_s3
from vispod.generator.adapters import AdapterUnavailable, AdapterVersion
from vispod.generator.backends.base import GenerationInput
from vispod.generator.backends.openai import OpenAIBackend

FAST = RetryPolicy(max_retries=1, backoff_base_s=0.01, backoff_max_s=0.1)


def ask(backend: OpenAIBackend, adapter_id: str) -> str:
    # The generator's own copy path means nothing to the engine: the backend must not send it.
    adapter = AdapterVersion(adapter_id, Path("/generator-pod/cache") / adapter_id, "smollm2")
    inp = GenerationInput(system="You write podcasts.", user="Scenes: a beach at sunset.", max_new_tokens=8,
                          temperature=0.0, adapter=adapter)
    return "".join(backend.stream(inp))


@pytest.fixture
def engine(tmp_path: Path):
    e = VLLMApiEngine(resolve_gguf("smollm2"), "smollm2", tmp_path / "engine-gguf")
    yield e
    e.stop()


def test_vllm_runtime_loading_via_the_sync(published, keys, keyring, own_s3, engine, tmp_path: Path) -> None:
    outcome = published[0]
    env = store_settings(own_s3, keys, f"vllm-{uuid.uuid4().hex[:6]}")
    store, signer = env.open(), env.signer()
    publish_version(store, signer, outcome, "1")
    volume = tmp_path / "shared-volume"
    lifecycle = {"podcast@1": "CANDIDATE"}   # what the generator's ListAdapters says
    sync = AdapterSync(store, keyring, volume, LoraServer(engine.url), lambda: LifecycleView(dict(lifecycle)),
                       candidate_slots=2, names=["podcast"])
    backend = OpenAIBackend(engine.url, "smollm2", text_only=True, retry=FAST, adapter_loading="sync")

    # Published and verified by the generator, but not yet in the engine: not routable, never the base model.
    assert not backend.servable("podcast@1")
    with pytest.raises(AdapterUnavailable, match="does not list adapter podcast@1"):
        ask(backend, "podcast@1")
    assert engine.log.served == []

    started = time.monotonic()
    report = sync.reconcile()
    record(sync_fetch_verify_load_s=round(time.monotonic() - started, 2))
    assert report.loaded == ["podcast@1"] and not report.rejected
    assert engine.log.loads == [("podcast@1", str(volume / "podcast" / "1"))]
    manifest, _ = store.manifest("podcast", "1", keyring)
    assert {p.name: sha256_file(p) for p in (volume / "podcast" / "1").iterdir()} == manifest["files"]
    assert backend.servable("podcast@1")
    assert ask(backend, "podcast@1") and engine.log.served == ["podcast@1"]

    # A tampered version: rejected by the sync, never in the volume or the engine, not routable.
    v2 = variant(outcome.result.adapter_dir, tmp_path / "v2", 2.0)
    event2 = publish_version(store, signer, outcome, "2", v2)
    overwrite(env, blob_key(event2.file_sha256["adapter_model.safetensors"]), b"\x00" * 64)
    lifecycle.update({"podcast@1": "ACTIVE", "podcast@2": "CANDIDATE"})
    report = sync.reconcile()
    assert report.rejected == {"podcast@2": "sha256_mismatch"} and report.loaded == []
    assert not (volume / "podcast" / "2").exists() and "podcast@2" not in LoraServer(engine.url).adapters()
    with pytest.raises(AdapterUnavailable):
        ask(backend, "podcast@2")
    assert engine.log.served == ["podcast@1"]

    # An outage: publishing waits (the trainer retries), the sync keeps what is loaded, podcast@1 still serves.
    v3 = variant(outcome.result.adapter_dir, tmp_path / "v3", 3.0)
    own_s3.stop()
    with pytest.raises(StoreUnavailable):
        publish_version(store, signer, outcome, "3", v3, attempts=2)
    report = sync.reconcile()
    assert report.loaded == report.unloaded == []   # what is loaded stays loaded
    assert ask(backend, "podcast@1") and engine.log.served[-1] == "podcast@1"
    start_s3(server=own_s3)
    event3 = publish_version(store, signer, outcome, "3", v3)
    assert store.versions("podcast") == ["1", "2", "3"]  # nothing lost
    lifecycle.update({"podcast@2": "REJECTED", "podcast@3": "CANDIDATE"})
    report = sync.reconcile()
    assert report.loaded == ["podcast@3"] and report.unloaded == []   # the active one and the candidate
    assert ask(backend, "podcast@3") and engine.log.served[-1] == "podcast@3"
    assert event3.adapter_id == "podcast@3"

    # Newer candidates fill the slots; the oldest candidate leaves the held set and the engine, the active stays.
    for v, scale in (("4", 0.5), ("5", 0.25)):
        publish_version(store, signer, outcome, v, variant(outcome.result.adapter_dir, tmp_path / f"v{v}", scale))
        lifecycle[f"podcast@{v}"] = "CANDIDATE"
    report = sync.reconcile()
    assert report.held == ("podcast@1", "podcast@5", "podcast@4")
    assert report.loaded == ["podcast@5", "podcast@4"] and report.unloaded == ["podcast@3"]
    assert not (volume / "podcast" / "3").exists() and (volume / "podcast" / "1").is_dir()
    assert not backend.listed.has("podcast@3", fresh=True) and ask(backend, "podcast@1")
    record(vllm_sync="ok")
