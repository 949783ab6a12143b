"""The consumer runtime on a real broker: outputs, dead letters, retries, idempotency, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from vispod.common.bus import EventConsumer, EventPublisher, EventReader, Output
from vispod.common.errors import InvalidArgument, NotFound, Unavailable
from vispod.common.events import Envelope
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic, dlq_topic, topic_name
from vispod.v1 import events_pb2


def _relay(env: Envelope) -> Iterator[Output]:
    set_id = env.message.image_set_id
    if set_id.startswith("invalid"):
        raise InvalidArgument(f"image set {set_id} has no images")
    if set_id.startswith("missing"):
        raise NotFound(f"no story {set_id}")
    if set_id.startswith("busy"):
        raise Unavailable("engine overloaded")
    if set_id.startswith("boom"):
        raise RuntimeError("model crashed")
    yield Output(Topic.DIALOGUE_GENERATED, events_pb2.DialogueGenerated(image_set_id=set_id))


def _start(kafka: KafkaSettings, handler=_relay, **kw) -> tuple[EventConsumer, threading.Thread]:  # type: ignore[no-untyped-def]
    consumer = EventConsumer(service="relay", topics=[Topic.IMAGESET_SUBMITTED], expected=events_pb2.ImageSetSubmitted,
                             handler=handler, kafka=kafka, retry_backoff_s=0.01, **kw)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    assert consumer.wait_running(60)
    return consumer, thread


def _submit(publisher: EventPublisher, set_id: str, event_id: str | None = None) -> str:
    return publisher.publish(Topic.IMAGESET_SUBMITTED, events_pb2.ImageSetSubmitted(image_set_id=set_id), event_id)


@pytest.mark.parametrize("delivery", ["exactly_once", "at_least_once"])
def test_bad_events_go_to_the_dlq_and_later_events_still_flow(kafka: KafkaSettings, delivery: str) -> None:
    kafka = kafka.model_copy(update={"delivery": delivery, "max_attempts": 2})
    consumer, thread = _start(kafka)
    publisher = EventPublisher(kafka, "test")
    _submit(publisher, "s-1")
    publisher.send_raw(topic_name(Topic.IMAGESET_SUBMITTED, kafka.topic_prefix), b"\x0a\xff\xff",
                       [("ce_type", b"vispod.v1.ImageSetSubmitted"), ("ce_id", b"garbage-1")], b"k1")
    _submit(publisher, "invalid-2")
    _submit(publisher, "boom-3")
    _submit(publisher, "missing-5")
    _submit(publisher, "busy-6")
    _submit(publisher, "s-4")
    outputs = EventReader(kafka, [Topic.DIALOGUE_GENERATED]).read(2, timeout=30)
    letters = EventReader(kafka, [dlq_topic("relay", kafka.topic_prefix)]).read(5, timeout=30)
    consumer.stop()
    thread.join(30)
    publisher.close()
    assert [e.message.image_set_id for e in outputs] == ["s-1", "s-4"]
    by_kind = {e.message.error_kind: e.message for e in letters}
    # The error family's status is the dead-letter reason: permanent ones at once, the rest after retries.
    assert sorted(e.message.error_kind for e in letters) == ["decode", "failed", "failed", "invalid", "not_found"]
    assert "no story missing-5" in by_kind["not_found"].error and by_kind["not_found"].attempts == 1
    busy = [e.message for e in letters if "overloaded" in e.message.error]
    assert len(busy) == 1 and busy[0].attempts == 2 and busy[0].error.startswith("Unavailable:")
    assert "cannot decode" in by_kind["decode"].error and by_kind["decode"].key == b"k1"
    assert by_kind["decode"].payload == b"\x0a\xff\xff" and by_kind["decode"].offset == 1
    assert {h.key for h in by_kind["decode"].headers} >= {"ce_type", "ce_id"}
    assert "has no images" in by_kind["invalid"].error and by_kind["invalid"].attempts == 1
    assert [e.message.attempts for e in letters if "model crashed" in e.message.error] == [2]
    assert all(m.service == "relay" and m.original_topic.endswith("imageset.submitted") for m in by_kind.values())


def test_redelivered_event_id_produces_no_second_output(kafka: KafkaSettings) -> None:
    consumer, thread = _start(kafka)
    publisher = EventPublisher(kafka, "test")
    _submit(publisher, "dup", event_id="same-id")
    _submit(publisher, "dup", event_id="same-id")
    _submit(publisher, "after")
    outputs = EventReader(kafka, [Topic.DIALOGUE_GENERATED]).read(3, timeout=15)
    consumer.stop()
    thread.join(30)
    assert [e.message.image_set_id for e in outputs] == ["dup", "after"]


def test_output_ids_derive_from_the_input_id(kafka: KafkaSettings) -> None:
    """A redelivery after a crash re-creates the same output ids, so readers can de-duplicate too."""
    consumer, thread = _start(kafka)
    publisher = EventPublisher(kafka, "test")
    _submit(publisher, "x", event_id="input-1")
    out = EventReader(kafka, [Topic.DIALOGUE_GENERATED]).read(1, timeout=15)
    consumer.stop()
    thread.join(30)
    from vispod.common.events import derived_id

    assert out[0].id == derived_id("input-1", 0, "relay")
    assert out[0].key == b"x"


def test_stop_finishes_the_batch_in_hand_and_commits(kafka: KafkaSettings) -> None:
    started = threading.Event()

    def slow(env: Envelope) -> Iterator[Output]:
        started.set()
        time.sleep(1.0)
        yield from _relay(env)

    consumer, thread = _start(kafka, slow)
    publisher = EventPublisher(kafka, "test")
    _submit(publisher, "in-flight")
    assert started.wait(15)
    consumer.stop()
    thread.join(30)
    assert not thread.is_alive()
    assert [e.message.image_set_id for e in EventReader(kafka, [Topic.DIALOGUE_GENERATED]).read(1, 10)] == ["in-flight"]
    # A new consumer of the same group starts after the committed offset: nothing is handled twice.
    handled: list[str] = []

    def record(env: Envelope) -> Iterator[Output]:
        handled.append(env.message.image_set_id)
        yield from _relay(env)

    consumer2, thread2 = _start(kafka, record)
    _submit(publisher, "next")
    assert len(EventReader(kafka, [Topic.DIALOGUE_GENERATED]).read(2, 20)) == 2
    consumer2.stop()
    thread2.join(30)
    assert handled == ["next"]


def test_metrics_count_outcomes(kafka: KafkaSettings) -> None:
    def value(outcome: str) -> float:
        return REGISTRY.get_sample_value("vispod_bus_events_consumed_total",
                                         {"service": "relay", "topic": "imageset.submitted", "outcome": outcome}) or 0

    before_ok, before_dlq = value("ok"), value("dlq")
    consumer, thread = _start(kafka)
    publisher = EventPublisher(kafka, "test")
    _submit(publisher, "m-1")
    _submit(publisher, "invalid-m")
    EventReader(kafka, [dlq_topic("relay", kafka.topic_prefix)]).read(1, 15)
    consumer.stop()
    thread.join(30)
    assert value("ok") - before_ok == 1
    assert value("dlq") - before_dlq == 1


@pytest.mark.parametrize("delivery", ["exactly_once"])
def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(kafka: KafkaSettings, delivery: str) -> None:
    total = 120
    publisher = EventPublisher(kafka, "test")
    for i in range(total):
        _submit(publisher, f"e-{i:03d}")
    script = Path(__file__).with_name("common_relay_consumer.py")
    cmd = [sys.executable, str(script), kafka.bootstrap, kafka.topic_prefix, "0.02", delivery]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    reader = EventReader(kafka, [Topic.DIALOGUE_GENERATED])
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = reader.read(30, timeout=60)
    assert len(seen) >= 30, "the first consumer made no progress"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    second = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen += reader.read(total - len(seen), timeout=120)
        # Wait a little more: a duplicate would show up now, if there were one.
        seen += reader.read(1, timeout=3)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    counts = Counter(e.message.image_set_id for e in seen)
    assert len(counts) == total, f"lost {total - len(counts)} events"
    assert max(counts.values()) == 1, f"duplicates: {[k for k, v in counts.items() if v > 1]}"
