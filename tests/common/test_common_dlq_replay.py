"""`vispod dlq replay`: dead letters go back to their original topic and a running consumer handles them."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from vispod.common.bus import EventConsumer, EventPublisher, EventReader, Output
from vispod.common.cli import main
from vispod.common.events import Envelope
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic, dlq_topic
from vispod.v1 import events_pb2


class FlakyDependency:
    """A handler whose dependency is down until fixed (a missing model volume, a revoked API key)."""

    def __init__(self) -> None:
        self.down = True
        self.handled: list[str] = []

    def __call__(self, env: Envelope) -> Iterator[Output]:
        if self.down:
            raise RuntimeError("judge API key revoked")
        self.handled.append(env.id)
        yield Output(Topic.DIALOGUE_GENERATED, events_pb2.DialogueGenerated(image_set_id=env.message.image_set_id))


@pytest.mark.parametrize("delivery", ["exactly_once", "at_least_once"])
def test_replayed_dead_letters_are_handled_by_the_running_consumer(kafka: KafkaSettings, delivery: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    kafka = kafka.model_copy(update={"delivery": delivery, "max_attempts": 2})
    handler = FlakyDependency()
    consumer = EventConsumer(service="relay", topics=[Topic.IMAGESET_SUBMITTED], expected=events_pb2.ImageSetSubmitted,
                             handler=handler, kafka=kafka, retry_backoff_s=0.01)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    publisher = EventPublisher(kafka, "test")
    outputs = EventReader(kafka, [Topic.DIALOGUE_GENERATED])
    letters = EventReader(kafka, [dlq_topic("relay", kafka.topic_prefix)])
    try:
        assert consumer.wait_running(60)
        ids = [publisher.publish(Topic.IMAGESET_SUBMITTED, events_pb2.ImageSetSubmitted(image_set_id=f"s-{i}"))
               for i in range(3)]
        assert len(letters.read(3, timeout=60)) == 3
        assert outputs.read(1, timeout=2) == []

        handler.down = False  # the dependency is fixed; the same process keeps running (no restart)
        args = ["dlq", "replay", "relay", "--bootstrap", kafka.bootstrap, "--topic-prefix", kafka.topic_prefix]
        assert main(args) == 0
        assert "replayed 3" in capsys.readouterr().out
        got = outputs.read(3, timeout=60)
        assert sorted(e.message.image_set_id for e in got) == ["s-0", "s-1", "s-2"]
        assert sorted(handler.handled) == sorted(ids)  # the original event ids, handled once each

        assert main(args) == 0  # a second replay republishes nothing: the group remembers where it got to
        assert "replayed 0" in capsys.readouterr().out
        assert outputs.read(1, timeout=3) == []
    finally:
        consumer.stop()
        thread.join(30)
        publisher.close()
        outputs.close()
        letters.close()


def test_replay_can_select_by_reason_and_dry_run(kafka: KafkaSettings, capsys: pytest.CaptureFixture[str]) -> None:
    publisher = EventPublisher(kafka, "test")
    original = events_pb2.ImageSetSubmitted(image_set_id="x")
    for kind in ("invalid", "failed"):
        letter = events_pb2.DeadLetter(original_topic=f"{kafka.topic_prefix}.imageset.submitted",
                                       payload=original.SerializeToString(), error_kind=kind, service="relay")
        publisher.publish(dlq_topic("relay", kafka.topic_prefix), letter)
    publisher.close()
    base = ["dlq", "replay", "relay", "--bootstrap", kafka.bootstrap, "--topic-prefix", kafka.topic_prefix]
    assert main([*base, "--kind", "failed", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would replay 1" in out and "imageset.submitted" in out
    assert main(["dlq", "replay", "nope", "--bootstrap", kafka.bootstrap]) == 2
