"""Restart safety on the real broker: a rescheduled generator pod (empty disk, new name) serves the same
active adapter and the same canary split, rebuilt from the compacted adapter topics and signed decisions."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
from gen_helpers import generator_settings, make_event
from lifecycle_keys import identities

from vispod.common.artifacts import ArtifactStore
from vispod.common.bus import EventPublisher, EventReader, ensure_topics
from vispod.common.topics import Topic
from vispod.devkit.testing.adapter_files import make_fake_adapter_files, published_event
from vispod.generator.service import build
from vispod.v1 import common_pb2, events_pb2, generator_pb2, generator_pb2_grpc

S = events_pb2


def listing(handle) -> generator_pb2.ListAdaptersResponse:
    stub = generator_pb2_grpc.GeneratorServiceStub(grpc.insecure_channel(f"127.0.0.1:{handle.grpc_port}"))
    return stub.ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=10)


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def served(kafka, set_ids: list[str], story_dir: Path, reader: EventReader) -> dict[str, str]:
    publisher = EventPublisher(kafka, "test")
    try:
        for set_id in set_ids:
            publisher.publish(Topic.IMAGESET_SUBMITTED, make_event(story_dir, n=1, set_id=set_id))
    finally:
        publisher.close()
    got = reader.read(len(set_ids), timeout=120, where=lambda e: e.message.image_set_id in set_ids)
    assert all(e.message.status == common_pb2.STATUS_OK for e in got), [e.message.error for e in got]
    return {e.message.image_set_id: e.message.adapter_id for e in got}


def test_a_rescheduled_pod_serves_the_same_active_adapter(tmp_path, kafka, engine, story_dir):
    ids = identities()
    keys = ids.write_public(tmp_path / "keys")
    ensure_topics(kafka)

    def pod(name: str):
        return generator_settings(story_dir, kafka, backend="openai", openai_url=engine.url, concurrency=4,
                                  artifact_root=tmp_path / "artifacts", instance_id=name,
                                  adapter_state_dir=tmp_path / name / "state",
                                  adapter_cache_dir=tmp_path / name / "cache", lifecycle_keys_dir=keys)

    first = pod("generator-7d9f-abcde")
    base = first.resolved_base_model_id()
    store = ArtifactStore(first.artifact_root)
    trainer = EventPublisher(kafka, "trainer")
    try:
        for n, adapter_id in enumerate(["a@1", "b@1", "c@1"]):
            name, version = adapter_id.split("@")
            folder = make_fake_adapter_files(tmp_path / "made" / name, base, seed=n)
            uri = store.put_dir(folder, name, version)
            event = published_event(store.path(uri), adapter_id, base, artifact_uri=uri)
            trainer.publish(Topic.ADAPTER_PUBLISHED, event)
        # Signed decisions: a then b promoted, b rolled back by an admin (a serves again), c on a 30 % canary.
        for cmd in (ids.command("a@1", S.ADAPTER_STATE_ACTIVE), ids.command("b@1", S.ADAPTER_STATE_ACTIVE),
                    ids.command("b@1", S.ADAPTER_STATE_RETIRED, signer=ids.admin, reason="complaints"),
                    ids.command("c@1", S.ADAPTER_STATE_CANARY, share=0.3)):
            trainer.publish(Topic.ADAPTER_LIFECYCLE, cmd)
    finally:
        trainer.close()

    results = EventReader(kafka, [Topic.DIALOGUE_GENERATED])
    sets = [f"set-{i}" for i in range(40)]
    try:
        handle = build(first).start()
        try:
            wait_until(lambda: listing(handle).active_adapter_id == "a@1" and any(
                a.adapter_id == "c@1" and a.state == S.ADAPTER_STATE_CANARY for a in listing(handle).adapters))
            before = {a.adapter_id: (a.state, a.canary_share) for a in listing(handle).adapters}
            routed = served(kafka, sets, story_dir, results)
        finally:
            handle.stop()
        assert set(routed.values()) == {"a@1", "c@1"}

        # The pod restarts with an empty disk (same name: a stable group would skip the history), then is
        # rescheduled under a new name: both rebuild the same state from the bus before serving.
        for old, name in (("generator-7d9f-abcde", "generator-7d9f-abcde"), ("generator-7d9f-abcde", "gen-xyz12")):
            shutil.rmtree(tmp_path / old)
            handle = build(pod(name)).start()
            try:
                again = served(kafka, sets, story_dir, results)  # the same image sets, again
                after = {a.adapter_id: (a.state, a.canary_share) for a in listing(handle).adapters}
                assert listing(handle).active_adapter_id == "a@1"
            finally:
                handle.stop()
            assert after == before and again == routed, name
            assert (tmp_path / name / "cache" / "a" / "1" / "adapter_model.safetensors").exists()
    finally:
        results.close()
    assert before == {"a@1": (S.ADAPTER_STATE_ACTIVE, 0.0), "b@1": (S.ADAPTER_STATE_RETIRED, 0.0),
                      "c@1": (S.ADAPTER_STATE_CANARY, 0.3)}
