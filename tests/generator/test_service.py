"""The generator service end to end: gRPC (unary, streaming, errors) and Kafka (results, DLQ), real broker."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import grpc
import pytest
from gen_helpers import Reply, generator_settings, make_event

from vispod.common.bus import EventPublisher, EventReader
from vispod.common.topics import Topic, dlq_topic
from vispod.generator.service import build
from vispod.v1 import common_pb2, events_pb2, generator_pb2, generator_pb2_grpc


def _stub(handle) -> generator_pb2_grpc.GeneratorServiceStub:
    channel = grpc.insecure_channel(f"127.0.0.1:{handle.grpc_port}")
    return generator_pb2_grpc.GeneratorServiceStub(channel)


@pytest.fixture
def vlm_service(tiny_vlm: Path, story_dir: Path, kafka):
    s = generator_settings(story_dir, kafka, backend="local", model_path=tiny_vlm, max_new_tokens=8, consume=False)
    handle = build(s).start()
    yield handle
    handle.stop()


def test_grpc_unary_and_streaming_on_the_tiny_vlm(vlm_service, story_dir) -> None:
    handle = vlm_service
    stub = _stub(handle)
    req = generator_pb2.GenerateRequest(image_set=make_event(story_dir, n=3))
    r = stub.Generate(req, timeout=120).result
    assert r.image_set_id == "set-1" and r.backend == "local" and r.random_weights
    assert r.input_mode == events_pb2.INPUT_MODE_PIXELS and r.usage.prompt_tokens > 0 and r.attempts >= 1
    assert r.status == common_pb2.STATUS_OK or r.error.startswith("malformed model output")
    chunks = list(stub.StreamGenerate(req, timeout=120))
    assert chunks[-1].WhichOneof("chunk") == "result"
    assert chunks[0].WhichOneof("chunk") == "attempt" and chunks[0].attempt.attempt == 1
    assert all(c.WhichOneof("chunk") in ("turn", "attempt") for c in chunks[1:-1])
    assert stub.ListAdapters(generator_pb2.ListAdaptersRequest()).active_adapter_id == ""
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{handle.metrics_port}/metrics").read().decode()
    assert 'vispod_generator_requests_total{backend="local"' in metrics
    assert "vispod_generator_in_flight_requests" in metrics and "vispod_generator_tokens_total" in metrics


@pytest.mark.parametrize(("kw", "reason"), [(dict(n=0), "no images"),
                                            (dict(speakers=[(c, "") for c in "ABCDE"]), "5 speaker")])
def test_grpc_invalid_argument(vlm_service, story_dir, kw, reason) -> None:
    handle = vlm_service
    req = generator_pb2.GenerateRequest(image_set=make_event(story_dir, **kw))
    for call in (lambda: _stub(handle).Generate(req, timeout=30), lambda: list(_stub(handle).StreamGenerate(req))):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and reason in err.value.details()


def test_grpc_streams_each_turn_then_the_result(story_dir, kafka, engine) -> None:
    s = generator_settings(story_dir, kafka, backend="openai", openai_url=engine.url, consume=False)
    handle = build(s).start()
    try:
        stub = _stub(handle)
        ev = make_event(story_dir, speakers=[("Ana", "a chef"), ("Ben", "")])
        chunks = list(stub.StreamGenerate(generator_pb2.GenerateRequest(image_set=ev), timeout=60))
        turns = [c.turn for c in chunks if c.WhichOneof("chunk") == "turn"]
        result = chunks[-1].result
        assert result.status == common_pb2.STATUS_OK and list(result.dialogue.turns) == turns
        assert [t.speaker for t in turns] == ["Ana", "Ben", "Ana", "Ben", "Ana"]
        # an engine that stays overloaded: UNAVAILABLE (the caller may retry), not a false FAILED result
        engine.replies = [Reply(status=503)] * 5
        with pytest.raises(grpc.RpcError) as err:
            stub.Generate(generator_pb2.GenerateRequest(image_set=ev), timeout=60)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        engine.replies = [Reply(status=503)] * 5
        with pytest.raises(grpc.RpcError) as err:
            list(stub.StreamGenerate(generator_pb2.GenerateRequest(image_set=ev), timeout=60))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "503" in err.value.details()
    finally:
        handle.stop()


def test_kafka_results_and_bad_events_to_dlq(tiny_vlm, story_dir, kafka, tmp_path) -> None:
    s = generator_settings(story_dir, kafka, backend="local", model_path=tiny_vlm, max_new_tokens=8)
    s.images.allowed_hosts = ["127.0.0.1"]
    s.images.allowed_networks = ["127.0.0.0/8"]
    handle = build(s).start()
    outside = tmp_path / "outside.png"
    outside.write_bytes((story_dir / "image_1.png").read_bytes())

    def bad(set_id: str, **kw) -> events_pb2.ImageSetSubmitted:
        return make_event(story_dir, set_id=set_id, **kw)

    events = [make_event(story_dir, n=2, set_id="good-1")]
    events.append(bad("no-images", n=0))
    events.append(bad("too-many", n=500))
    ev = bad("unreachable", n=2)
    ev.images[1].uri = "https://127.0.0.1:9/photo.png"
    events.append(ev)
    ev = bad("forbidden", n=2)
    ev.images[0].uri = outside.as_uri()
    events.append(ev)
    ev = bad("corrupt", n=2)
    ev.images[1].uri = (story_dir / "corrupt.png").as_uri()
    events.append(ev)
    events.append(bad("five-speakers", speakers=[(c, "") for c in "ABCDE"]))
    events.append(make_event(story_dir, n=3, set_id="good-2", speakers=[("Ana", ""), ("Ben", "")]))
    publisher = EventPublisher(kafka, "test")
    results = EventReader(kafka, [Topic.DIALOGUE_GENERATED])
    dlq = EventReader(kafka, [dlq_topic("generator", kafka.topic_prefix)])
    try:
        for e in events:
            publisher.publish(Topic.IMAGESET_SUBMITTED, e)
        got = results.read(2, timeout=150)
        letters = dlq.read(6, timeout=30)
    finally:
        publisher.close()
        results.close()
        dlq.close()
        handle.stop()
    by_id = {env.message.image_set_id: env.message for env in got}
    assert set(by_id) == {"good-1", "good-2"}
    for r in by_id.values():
        assert r.backend == "local" and r.random_weights and r.correlation_id.startswith("c-")
        assert r.status == common_pb2.STATUS_OK or (r.error and not r.dialogue.turns)
    reasons = {}
    for env in letters:
        sub = events_pb2.ImageSetSubmitted.FromString(env.message.payload)
        assert env.message.error_kind == "invalid"
        reasons[sub.image_set_id] = env.message.error
    assert "no images" in reasons["no-images"]
    assert "500 images" in reasons["too-many"]
    assert "fetching https://127.0.0.1:9/photo.png failed" in reasons["unreachable"]
    assert "outside the allowed image roots" in reasons["forbidden"]
    assert "cannot be decoded" in reasons["corrupt"] or "corrupt" in reasons["corrupt"]
    assert "5 speaker(s)" in reasons["five-speakers"]
