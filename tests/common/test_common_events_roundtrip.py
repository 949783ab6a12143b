"""Every event type survives the bus in protobuf and in the proto3 JSON mapping."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from vispod.common import events
from vispod.common.bus import EventPublisher, EventReader
from vispod.common.settings import KafkaSettings
from vispod.v1 import common_pb2, events_pb2

SAMPLES = [
    events_pb2.ImageSetSubmitted(
        image_set_id="set-1", tenant="acme", correlation_id="c-1", target_words=800, language="en",
        images=[common_pb2.ImageRef(uri="file:///data/1.jpg", caption="a beach", mime_type="image/jpeg",
                                    sha256="ab" * 32)],
        speakers=[common_pb2.Speaker(name="Alex", persona="curious host"), common_pb2.Speaker(name="Sam")],
        labels={"run": "eval-1"}),
    events_pb2.DialogueGenerated(
        image_set_id="set-1", status=common_pb2.STATUS_OK, model="m", backend="local", adapter_id="sporc@3",
        dialogue=common_pb2.Dialogue(turns=[common_pb2.Turn(speaker="Alex", text="Hi!", image_refs=[0])]),
        usage=common_pb2.TokenUsage(prompt_tokens=10, completion_tokens=20), latency_seconds=1.5,
        input_mode=events_pb2.INPUT_MODE_PIXELS),
    events_pb2.MetricsComputed(image_set_id="set-1", style=common_pb2.StyleMetrics(words=900, distinct_2=0.8),
                               grounding=common_pb2.GroundingMetrics(clipscore=20.4, per_image_max=[0.2, 0.3])),
    events_pb2.JudgementCompleted(image_set_id="set-1", system_a="a", system_b="b", verdicts=[
        events_pb2.Verdict(judge="local", criterion="naturalness", outcome=events_pb2.OUTCOME_A_WINS)]),
    events_pb2.AdapterPublished(adapter_id="sporc@1", name="sporc", version="1", base_model_id="qwen3-vl",
                                file_sha256={"adapter_model.safetensors": "cd" * 32}, lora_rank=16,
                                training_metrics={"eval_loss": 1.25}),
    events_pb2.AdapterLifecycleChanged(adapter_id="sporc@1", state=events_pb2.ADAPTER_STATE_ACTIVE,
                                       evidence={"win_rate_lower": 0.61}),
    events_pb2.SynthesisRequested(request_id="r-1", prompts=["a beach at dusk"], width=512, height=512, steps=20),
    events_pb2.SynthesisCompleted(request_id="r-1", status=common_pb2.STATUS_OK,
                                  images=[common_pb2.ImageRef(uri="file:///a/b.png")]),
    events_pb2.PodcastRendered(image_set_id="set-1", artifact_uri="file:///a/p.opus", duration_seconds=61.5,
                               turns=[events_pb2.TurnTiming(index=0, speaker="Alex", end_seconds=3.5, image_refs=[0])],
                               voices=[events_pb2.SpeakerVoice(speaker="Alex", voice="joe-deep", engine="piper")],
                               chapters=[events_pb2.Chapter(image_index=0, title="Photo 1")]),
    events_pb2.CanaryProgress(canary_adapter_id="pod@2", active_adapter_id="pod@1",
                              canary=events_pb2.CanarySide(n=3, failed=1, latency_sum_s=4.5),
                              active=events_pb2.CanarySide(n=4, waiting=[events_pb2.CanarySample(scores={"r": 0.1})]),
                              log_likelihood_ratio={"repetition": -1.5}, pairs={"repetition": 3}),
    events_pb2.DeadLetter(original_topic="t", partition=0, offset=5, payload=b"\x00\x01", error="bad",
                          headers=[events_pb2.KafkaHeader(key="ce_id", value=b"x")]),
]


def test_every_event_type_is_covered() -> None:
    assert {type(m).DESCRIPTOR.full_name for m in SAMPLES} == set(events.EVENT_TYPES)


@pytest.mark.parametrize("content_type", [events.PROTOBUF, events.JSON])
def test_round_trip_on_the_broker(kafka: KafkaSettings, content_type: str) -> None:
    publisher = EventPublisher(kafka, "test")
    topic = f"{kafka.topic_prefix}.roundtrip"
    reader = EventReader(kafka, [topic])
    ids = []
    for message in SAMPLES:
        value, headers, key = events.encode(message, "vispod/test", content_type=content_type)
        publisher.send_raw(topic, value, headers, key)
        ids.append(dict(headers)["ce_id"].decode())
    got = reader.read(len(SAMPLES), timeout=30)
    reader.close()
    publisher.close()
    assert [e.id for e in got] == ids
    for env, sent in zip(got, SAMPLES, strict=True):
        assert env.message == sent
        assert env.type == sent.DESCRIPTOR.full_name
        assert env.source == "vispod/test"


def test_plain_json_from_any_client_is_accepted() -> None:
    """Upstream products may publish JSON with only a content-type header (no ce_id, no ce_type)."""
    body = {"image_set_id": "s-9", "images": [{"uri": "https://img.example/1.jpg"}], "target_words": 600}
    env = events.decode(json.dumps(body).encode(), [("content-type", b"application/json")],
                        events_pb2.ImageSetSubmitted)
    assert env.message.image_set_id == "s-9" and env.message.target_words == 600
    assert len(env.id) == 64  # sha256 of the value stands in for a missing ce_id
    camel = json_format.MessageToJson(env.message)
    assert "imageSetId" in camel


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"\xff\xfe", [("content-type", b"application/json")], "cannot decode"),
        (b"{}", [("content-type", b"text/plain")], "unsupported content-type"),
        (b"", [("ce_type", b"vispod.v1.Nope")], "unknown ce_type"),
        (b"", [("ce_specversion", b"0.3")], "unsupported ce_specversion"),
        (None, [], "tombstone"),
        (b'{"image_set_id": 5, "bogus": 1}', [("content-type", b"application/json")], "cannot decode"),
        (b"", [("ce_type", b"vispod.v1.DialogueGenerated")], "was expected"),
    ],
)
def test_malformed_records_are_refused_with_a_reason(value, headers, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(events.EventDecodeError, match=reason):
        events.decode(value, headers, events_pb2.ImageSetSubmitted)
