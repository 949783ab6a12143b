"""The synth service end to end: gRPC Synthesize, the Kafka flow, the DLQ, metrics (real broker)."""

from __future__ import annotations

import hashlib
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import synth_settings

from vispod.common.artifacts import ArtifactStore
from vispod.common.bus import EventPublisher, EventReader
from vispod.common.service import ServiceHandle
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic, dlq_topic
from vispod.synth.service import build
from vispod.v1 import common_pb2, events_pb2, synth_pb2, synth_pb2_grpc


@pytest.fixture
def service(tiny_pipeline: Path, tmp_path: Path, kafka: KafkaSettings) -> Iterator[ServiceHandle]:
    settings = synth_settings(tiny_pipeline, tmp_path / "artifacts", kafka)
    handle = build(settings).start()
    assert handle.consumers[0].wait_running(60)
    yield handle
    handle.stop()


def _stub(handle: ServiceHandle) -> synth_pb2_grpc.SynthServiceStub:
    return synth_pb2_grpc.SynthServiceStub(grpc.insecure_channel(f"127.0.0.1:{handle.grpc_port}"))


def _request(**fields: object) -> synth_pb2.SynthesizeRequest:
    return synth_pb2.SynthesizeRequest(request=events_pb2.SynthesisRequested(**fields))


def test_grpc_synthesize_and_bad_requests(service: ServiceHandle, tmp_path: Path) -> None:
    stub = _stub(service)
    reply = stub.Synthesize(_request(prompts=["a beach", "a market"], seed=7), timeout=120).result
    assert len(reply.images) == 2 and reply.random_weights and reply.model == "pipeline"
    store = ArtifactStore(tmp_path / "artifacts")
    for ref in reply.images:
        assert ref.mime_type == "image/png" and ref.uri.startswith("file://")
        assert hashlib.sha256(store.path(ref.uri).read_bytes()).hexdigest() == ref.sha256
    again = stub.Synthesize(_request(prompts=["a beach", "a market"], seed=7), timeout=120).result
    assert [r.uri for r in again.images] == [r.uri for r in reply.images]  # deterministic, content-addressed

    bad = [
        (_request(), "at least one prompt"),
        (_request(prompts=["x"], width=100), "not a multiple of 8"),
        (_request(prompts=["x"] * 9), "exceed the limit of 8"),
        (_request(prompts=["x"], steps=1000), "steps"),
        (_request(prompts=["x"], guidance=-2), "negative"),
    ]
    for request, reason in bad:
        with pytest.raises(grpc.RpcError) as err:
            stub.Synthesize(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason in err.value.details()

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=5).read().decode()
    assert 'vispod_synth_images_total{source="grpc"}' in metrics
    assert "vispod_synth_request_duration_seconds_bucket" in metrics
    assert "vispod_synth_queue_depth" in metrics


def test_kafka_request_completes_and_invalid_goes_to_dlq(service: ServiceHandle, kafka: KafkaSettings) -> None:
    reader = EventReader(kafka, [Topic.SYNTHESIS_COMPLETED, dlq_topic("synth", kafka.topic_prefix)])
    publisher = EventPublisher(kafka, "test")
    try:
        good_id, bad_id = f"good-{uuid.uuid4().hex[:6]}", f"bad-{uuid.uuid4().hex[:6]}"
        publisher.publish(
            Topic.SYNTHESIS_REQUESTED, events_pb2.SynthesisRequested(request_id=bad_id, prompts=["x"], width=33)
        )
        publisher.publish(
            Topic.SYNTHESIS_REQUESTED,
            events_pb2.SynthesisRequested(
                request_id=good_id,
                correlation_id="c1",
                prompts=["a red bike", "a cake", "a dog"],
                seed=1,
                labels={"k": "v"},
            ),
        )
        got = reader.read(2, timeout=120)
        assert len(got) == 2, got
        by_type = {type(e.message).__name__: e.message for e in got}
        done = by_type["SynthesisCompleted"]
        assert done.request_id == good_id and done.correlation_id == "c1" and done.status == common_pb2.STATUS_OK
        assert len(done.images) == 3 and done.random_weights and dict(done.labels) == {"k": "v"}
        letter = by_type["DeadLetter"]
        assert letter.error_kind == "invalid" and "width: 33 is not a multiple of 8" in letter.error
        assert letter.service == "synth"
    finally:
        publisher.close()
        reader.close()
