"""The whole service with a LoRA adapter: published by event, verified, promoted over gRPC, served from the
local tiny VLM and recorded in DialogueGenerated; "base" still reaches the base model."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from gen_helpers import generator_settings, make_event

from vispod.common.artifacts import ArtifactStore
from vispod.common.bus import EventPublisher, EventReader
from vispod.common.settings import GrpcTlsSettings
from vispod.common.topics import Topic
from vispod.devkit.testing.adapter_files import make_lora_adapter, published_event
from vispod.generator.service import build
from vispod.v1 import events_pb2, generator_pb2, generator_pb2_grpc

A = generator_pb2.UpdateAdapterRequest


def test_published_adapter_is_served_and_recorded(tiny_vlm: Path, story_dir: Path, kafka, tmp_path: Path) -> None:
    s = generator_settings(story_dir, kafka, backend="local", model_path=tiny_vlm, max_new_tokens=10,
                           temperature=0.0, max_attempts=1, artifact_root=tmp_path / "artifacts",
                           adapter_state_dir=tmp_path / "state", adapter_cache_dir=tmp_path / "cache",
                           grpc_tls=GrpcTlsSettings(admin_open_without_mtls=True))  # UpdateAdapter over plaintext
    store = ArtifactStore(s.artifact_root)
    uri = store.put_dir(make_lora_adapter(tiny_vlm, tmp_path / "lora", seed=3), "story", "1")
    handle = build(s).start()
    publisher = EventPublisher(kafka, "trainer")
    results = EventReader(kafka, [Topic.DIALOGUE_GENERATED])
    try:
        publisher.publish(Topic.ADAPTER_PUBLISHED,
                          published_event(store.path(uri), "story@1", s.resolved_base_model_id(), artifact_uri=uri))
        stub = generator_pb2_grpc.GeneratorServiceStub(grpc.insecure_channel(f"127.0.0.1:{handle.grpc_port}"))
        deadline = time.monotonic() + 60
        while not stub.ListAdapters(generator_pb2.ListAdaptersRequest()).adapters:
            assert time.monotonic() < deadline, "the adapter was never registered"
            time.sleep(0.3)
        stub.UpdateAdapter(A(adapter_id="story@1", action=A.ACTION_PROMOTE, reason="test"))
        assert stub.ListAdapters(generator_pb2.ListAdaptersRequest()).active_adapter_id == "story@1"

        publisher.publish(Topic.IMAGESET_SUBMITTED, make_event(story_dir, n=2, set_id="tuned"))
        publisher.publish(Topic.IMAGESET_SUBMITTED, make_event(story_dir, n=2, set_id="plain", adapter="base"))
        got = {e.message.image_set_id: e.message for e in results.read(2, timeout=120)}
    finally:
        publisher.close()
        results.close()
        handle.stop()
    tuned, plain = got["tuned"], got["plain"]
    assert tuned.adapter_id == "story@1" and tuned.system.endswith("@story@1") and plain.adapter_id == ""
    assert tuned.input_mode == events_pb2.INPUT_MODE_PIXELS and tuned.random_weights

    def output(r: events_pb2.DialogueGenerated) -> str:  # the text itself, or its start kept for a failed result
        return r.dialogue.text or next(w for w in r.warnings if "output began" in w).split("output began:")[1]

    assert output(tuned) != output(plain)
