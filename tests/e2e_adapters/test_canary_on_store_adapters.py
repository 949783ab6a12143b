"""The whole delivery on the real broker and the real S3 server: the trainer's signed versions reach a generator
service (verified by its registry from the store) and a vLLM-API engine (loaded by the adapter-sync); signed gate
commands make one active and the next a 10 % canary; the measured share over 200 image sets, and the gate's
rollback of a canary its own scoring of live dialogues finds worse."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from conftest import publish_version, record, store_settings, variant
from PIL import Image
from vllm_api_engine import VLLMApiEngine

from vispod.adaptersync.lifecycle import GeneratorLifecycle
from vispod.adaptersync.sync import AdapterSync
from vispod.common.bus import EventPublisher, ensure_topics
from vispod.common.lifecycle_signing import sign_command
from vispod.common.llm_server import LoraServer
from vispod.common.settings import ImageAccessSettings, KafkaSettings
from vispod.common.signing import Signer, generate_keypair
from vispod.common.topics import Topic
from vispod.devkit.testing.canary_probe import measure_canary_share, serve_scores, traffic_until_decided
from vispod.gate.clients import Clients
from vispod.gate.service import canary_consumers, canary_monitor
from vispod.gate.settings import GateSettings
from vispod.generator.service import build
from vispod.generator.settings import GeneratorSettings
from vispod.v1 import common_pb2, events_pb2, generator_pb2, generator_pb2_grpc

S = events_pb2
SHARE = 0.10


def image_sets(story: Path, n: int) -> list[events_pb2.ImageSetSubmitted]:
    refs = [common_pb2.ImageRef(uri=(story / f"image_{i}.png").as_uri(), caption=f"scene {i} at the beach",
                                mime_type="image/png") for i in range(1, 6)]
    return [events_pb2.ImageSetSubmitted(image_set_id=f"story-{k:04d}", tenant="t", images=refs,
                                         correlation_id=f"c-{k}", seed=7) for k in range(n)]


def states(addr: str) -> dict[str, int]:
    import grpc

    with grpc.insecure_channel(addr) as channel:
        listing = generator_pb2_grpc.GeneratorServiceStub(channel).ListAdapters(generator_pb2.ListAdaptersRequest(),
                                                                                timeout=10)
    return {a.adapter_id: a.state for a in listing.adapters}


def wait_for(condition, what: str, timeout: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout:g} s"
        time.sleep(0.2)


@pytest.fixture
def engine(tmp_path: Path):
    e = VLLMApiEngine(None, "smollm2", tmp_path / "unused")
    yield e
    e.stop()


def test_canary_share_and_rollback_on_signed_store_versions(published, keys, keyring, own_s3, engine, kafka_bootstrap,
                                                            tmp_path: Path, monkeypatch) -> None:
    outcome = published[0]
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=f"c{uuid.uuid4().hex[:10]}")
    ensure_topics(kafka)
    env = store_settings(own_s3, keys, f"canary-{uuid.uuid4().hex[:6]}")
    store, signer = env.open(), env.signer()
    trainer = EventPublisher(kafka, "trainer")
    try:
        publish_version(store, signer, outcome, "1", publisher=trainer)
        publish_version(store, signer, outcome, "2", variant(outcome.result.adapter_dir, tmp_path / "v2", 2.0),
                        publisher=trainer)
    finally:
        trainer.close()
    lifecycle = tmp_path / "lifecycle-keys"
    generate_keypair(tmp_path / "private", "gate")
    lifecycle.mkdir()
    (lifecycle / "gate.pub").write_bytes((tmp_path / "private" / "gate.pub").read_bytes())
    gate = Signer.from_file(tmp_path / "private" / "gate.key", "gate")

    story = tmp_path / "story"
    story.mkdir()
    for i in range(1, 6):
        Image.new("RGB", (64, 48), (40 * i, 120, 200 - 30 * i)).save(story / f"image_{i}.png")
    for name, value in env.model_dump().items():   # the generator reads the store and its keyring from env
        if value is not None and name != "signing_key_file":
            raw = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
            monkeypatch.setenv(f"VISPOD_ADAPTER_STORE_{name.upper()}", raw)
    settings = GeneratorSettings(
        kafka=kafka, backend="openai", openai_url=engine.url, openai_model="smollm2", openai_adapter_loading="sync",
        base_model_id="smollm2", images=ImageAccessSettings(file_roots=[story], max_images=32), grpc_port=0,
        metrics_port=0, max_new_tokens=24, concurrency=8, artifact_root=tmp_path / "artifacts",
        instance_id="generator-0", adapter_state_dir=tmp_path / "gen" / "state",
        adapter_cache_dir=tmp_path / "gen" / "cache", lifecycle_keys_dir=lifecycle, backoff_base_s=0.01,
        backoff_max_s=0.5)
    handle = build(settings).start()
    addr = f"127.0.0.1:{handle.grpc_port}"
    try:
        # The generator verifies and registers both; the engine pod's adapter-sync reads that lifecycle from it
        # and loads both candidates (two slots); then the gate's signed commands find them servable.
        wait_for(lambda: len(states(addr)) == 2, "both versions registered")
        lifecycle_source = GeneratorLifecycle(addr)
        sync = AdapterSync(store, keyring, tmp_path / "volume", LoraServer(engine.url), lifecycle_source,
                           candidate_slots=2, names=["podcast"])
        assert sync.reconcile().loaded == ["podcast@2", "podcast@1"]
        lifecycle_source.close()
        commands = EventPublisher(kafka, "gate")
        try:
            for adapter_id, state, share in (("podcast@1", S.ADAPTER_STATE_ACTIVE, 0.0),
                                             ("podcast@2", S.ADAPTER_STATE_CANARY, SHARE)):
                commands.publish(Topic.ADAPTER_LIFECYCLE, sign_command(
                    S.AdapterLifecycleChanged(adapter_id=adapter_id, state=state, canary_share=share,
                                              reason="e2e decision"), gate))
        finally:
            commands.close()
        wait_for(lambda: states(addr).get("podcast@2") == S.ADAPTER_STATE_CANARY, "the canary")
        measured = measure_canary_share(kafka, image_sets(story, 200), "podcast@2", resubmit=50)
        assert measured.n == 200 and abs(measured.share - SHARE) <= 0.05 and measured.sticky
        assert set(measured.by_set.values()) == {"podcast@1", "podcast@2"}   # never the base model
        assert set(engine.log.served) == {"podcast@1", "podcast@2"}
        record(canary_share_pct=round(100 * measured.share, 1), canary_sets=measured.n)

        # The gate scores live dialogues itself: its metrics service finds podcast@2 repeating itself more.
        scores, server = serve_scores({"podcast@1": 0.05, "podcast@2": 0.30})
        gate_settings = GateSettings(kafka=kafka, artifact_root=tmp_path / "gate", generator_addr=addr,
                                     metrics_addr=scores, metrics_port=0, canary_min_samples=10,
                                     canary_refresh_s=0.2, canary_tick_s=1)
        clients = Clients(generator_addr=addr, metrics_addr=scores)
        publisher = EventPublisher(kafka, "gate")
        consumers = canary_consumers(gate_settings, canary_monitor(gate_settings, clients, gate, publisher))
        threads = [threading.Thread(target=c.run, daemon=True) for c in consumers]
        for t in threads:
            t.start()
        try:
            assert all(c.wait_running(60) for c in consumers)
            more = image_sets(story, 600)[200:]
            rolled = traffic_until_decided(kafka, addr, "podcast@2", more, timeout=90)
        finally:
            for c in consumers:
                c.stop()
            for t in threads:
                t.join(30)
            publisher.close()
            clients.close()
            server.stop(0)
        assert rolled.rolled_back and rolled.active == "podcast@1"
        record(rollback_ok=True, rollback_s=round(rolled.seconds, 2))
    finally:
        handle.stop()
