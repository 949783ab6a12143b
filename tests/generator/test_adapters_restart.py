"""Restart safety on the real broker: a rescheduled generator pod (empty disk, new name) serves the same
active adapter and the same canary split, rebuilt from the compacted adapter topics and signed decisions."""

from __future__ import annotations

import shutil

from adapter_stack import listing, pod_settings, publish_adapters, publish_commands, states, wait_until
from gen_helpers import make_event
from lifecycle_keys import identities

from vispod.common.bus import EventPublisher, EventReader, ensure_topics
from vispod.common.topics import Topic
from vispod.generator.service import build
from vispod.v1 import common_pb2, events_pb2

S = events_pb2


def served(kafka, set_ids: list[str], story_dir, reader: EventReader) -> dict[str, str]:
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
        return pod_settings(tmp_path, story_dir, kafka, engine.url, keys, name, concurrency=4)

    publish_adapters(kafka, pod("generator-7d9f-abcde"), tmp_path, "a@1", "b@1", "c@1")
    # Signed decisions: a then b promoted, b rolled back by an admin (a serves again), c on a 30 % canary.
    publish_commands(kafka, ids.command("a@1", S.ADAPTER_STATE_ACTIVE), ids.command("b@1", S.ADAPTER_STATE_ACTIVE),
                     ids.command("b@1", S.ADAPTER_STATE_RETIRED, signer=ids.admin, reason="complaints"),
                     ids.command("c@1", S.ADAPTER_STATE_CANARY, share=0.3))

    results = EventReader(kafka, [Topic.DIALOGUE_GENERATED])
    sets = [f"set-{i}" for i in range(40)]
    try:
        handle = build(pod("generator-7d9f-abcde")).start()
        try:
            wait_until(lambda: states(handle).get("c@1", (0,))[0] == S.ADAPTER_STATE_CANARY, what="the canary")
            before = states(handle)
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
                after = states(handle)
                assert listing(handle).active_adapter_id == "a@1"
            finally:
                handle.stop()
            assert after == before and again == routed, name
            assert (tmp_path / name / "cache" / "a" / "1" / "adapter_model.safetensors").exists()
    finally:
        results.close()
    assert before == {"a@1": (S.ADAPTER_STATE_ACTIVE, 0.0), "b@1": (S.ADAPTER_STATE_RETIRED, 0.0),
                      "c@1": (S.ADAPTER_STATE_CANARY, 0.3)}


def test_replay_catches_up_past_transaction_markers(kafka):
    """The gate writes its commands in Kafka transactions: the end offset then counts the commit marker, and a
    replaying registry must still see itself caught up (else a restarted pod would never take work)."""
    import threading
    import uuid

    from kafka import KafkaProducer

    from vispod.common import events
    from vispod.common.bus import EventConsumer
    from vispod.common.topics import topic_name

    ensure_topics(kafka)
    producer = KafkaProducer(**kafka.client_config(), transactional_id=f"gate-{uuid.uuid4().hex[:8]}",
                             enable_idempotence=True, acks="all")
    producer.init_transactions()
    producer.begin_transaction()
    value, headers, key = events.encode(identities().command("a@1", S.ADAPTER_STATE_ACTIVE), "vispod/gate", None)
    producer.send(topic_name(Topic.ADAPTER_LIFECYCLE, kafka.topic_prefix), value=value, headers=headers, key=key)
    producer.commit_transaction()
    producer.close()
    seen: list = []
    consumer = EventConsumer(service="generator", topics=[Topic.ADAPTER_LIFECYCLE],
                             expected=events_pb2.AdapterLifecycleChanged, handler=lambda env: seen.append(env) or [],
                             kafka=kafka, replay=True)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        assert consumer.caught_up.wait(30), "the replay never caught up"
        assert len(seen) == 1
    finally:
        consumer.stop()
        thread.join(30)
