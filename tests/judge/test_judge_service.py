"""The judge service on the real broker and a real gRPC server: pairing, timeouts, redelivery, restarts."""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import grpc
import pytest
from judge_scripted import ScriptedJudge
from PIL import Image
from prometheus_client import REGISTRY

from vispod.common.bus import EventPublisher, EventReader, ensure_topics
from vispod.common.images import ImageFetcher
from vispod.common.settings import ImageAccessSettings, KafkaSettings
from vispod.common.topics import Topic, dlq_topic
from vispod.judge.judging import Comparer
from vispod.judge.protocol import Panel
from vispod.judge.rubrics import load_rubric
from vispod.judge.service import build
from vispod.judge.settings import JudgeSettings
from vispod.v1 import common_pb2, events_pb2, judge_pb2, judge_pb2_grpc

CRITERIA = ["naturalness", "visual_grounding"]
GOOD = "Speaker 1: GOOD — remember the red boat at dawn?\nSpeaker 2: I do, the lake was glass."
PLAIN = "Speaker 1: There was a lake.\nSpeaker 2: Yes."


def _settings(kafka: KafkaSettings, state: Path, images_root: Path | None = None, **kw: object) -> JudgeSettings:
    images = ImageAccessSettings(file_roots=[images_root] if images_root else [])
    base = dict(
        kafka=kafka,
        grpc_port=0,
        metrics_port=0,
        state_dir=state,
        criteria=CRITERIA,
        images=images,
        pairs=[{"a": "cand", "b": "base"}],
        sweep_interval_s=0.2,
        shutdown_grace_s=0.5,
    )
    base.update(kw)
    return JudgeSettings(**base)


class Running:
    """A judge service started in-process with a scripted judge."""

    def __init__(self, settings: JudgeSettings, judge: ScriptedJudge | None = None) -> None:
        self.judge = judge or ScriptedJudge()
        panel = Panel([self.judge], load_rubric("v1"), max_concurrency=2)
        comparer = Comparer(settings, panel, ImageFetcher(settings.images))
        self.handle = build(settings, comparer).start()
        self.app = self.handle.app
        assert not settings.consume or self.handle.consumers[0].wait_running(60)

    def stop(self) -> None:
        self.handle.stop()


def _event(image_set: str, system: str, text: str, **labels: str) -> events_pb2.DialogueGenerated:
    ev = events_pb2.DialogueGenerated(
        image_set_id=image_set,
        system=system,
        status=common_pb2.STATUS_OK,
        correlation_id=f"c-{image_set}",
        dialogue=common_pb2.Dialogue(text=text),
        images=[common_pb2.ImageRef(uri="file:///nowhere/1.jpg", caption="a red boat on a lake at dawn")],
    )
    ev.labels.update(labels)
    return ev


def _pairs(result: str) -> float:
    """The process-wide counter (other tests in this process count too: compare before and after)."""
    return REGISTRY.get_sample_value("vispod_judge_pairs_total", {"result": result}) or 0.0


@pytest.fixture
def bus(kafka: KafkaSettings):
    ensure_topics(kafka)
    publisher = EventPublisher(kafka, "generator")
    reader = EventReader(kafka, [Topic.JUDGEMENT_COMPLETED])
    yield publisher, reader
    publisher.close()
    reader.close()


def test_out_of_order_pair_is_judged_once_and_redelivery_adds_nothing(kafka, bus, tmp_path) -> None:
    publisher, reader = bus
    judged_before, duplicates_before = _pairs("judged"), _pairs("duplicate")
    service = Running(_settings(kafka, tmp_path / "state"))
    try:
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-1", "base", PLAIN), event_id="ev-b")  # b first
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-1", "unrelated", PLAIN))  # no pair: ignored
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-1", "cand", GOOD), event_id="ev-a")
        [env] = reader.read(1, timeout=60)
        j = env.message
        assert (j.image_set_id, j.system_a, j.system_b, j.error) == ("set-1", "cand", "base", "")
        assert j.correlation_id == "c-set-1" and j.labels["judge.pair_id"] == "cand vs base"
        assert [v.criterion for v in j.verdicts] == CRITERIA
        assert all(v.outcome == events_pb2.OUTCOME_A_WINS for v in j.verdicts)
        assert all(v.usage.prompt_tokens == 100 for v in j.verdicts)
        calls = service.judge.calls
        assert calls == 4  # 2 criteria x 2 orders
        # redelivery (same id), and the same sides published anew (new ids): no second judgement
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-1", "cand", GOOD), event_id="ev-a")
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-1", "base", PLAIN))
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-1", "cand", GOOD))
        assert reader.read(1, timeout=6) == []
        assert service.judge.calls == calls
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{service.handle.metrics_port}/metrics").read().decode()
        assert _pairs("judged") == judged_before + 1 and _pairs("duplicate") >= duplicates_before + 2
        assert 'vispod_judge_pairs_total{result="judged"}' in metrics
        assert "vispod_judge_verdicts_total" in metrics and "vispod_judge_tokens_total" in metrics
    finally:
        service.stop()


def test_missing_side_times_out_with_an_error_judgement_and_late_side_is_dropped(kafka, bus, tmp_path) -> None:
    publisher, reader = bus
    service = Running(_settings(kafka, tmp_path / "state", pair_timeout_s=1.0))
    try:
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-2", "cand", GOOD))
        [env] = reader.read(1, timeout=60)
        j = env.message
        assert j.image_set_id == "set-2" and "did not arrive within 1 s" in j.error and not j.verdicts
        assert (j.system_a, j.system_b) == ("cand", "base")
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-2", "base", PLAIN))  # too late
        assert reader.read(1, timeout=5) == []
        assert service.judge.calls == 0
    finally:
        service.stop()


def test_parked_side_survives_a_restart(kafka, bus, tmp_path) -> None:
    publisher, reader = bus
    settings = _settings(kafka, tmp_path / "state")
    first = Running(settings)
    try:
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-3", "cand", GOOD))
        for _ in range(100):  # parked on disk (and its offset committed by the bus)
            if first.app.store.pending():
                break
            import time

            time.sleep(0.1)
        assert len(first.app.store.pending()) == 1
    finally:
        first.stop()
    second = Running(settings)  # a new process: nothing in memory, same group and state folder
    try:
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-3", "base", PLAIN))
        [env] = reader.read(1, timeout=60)
        assert env.message.image_set_id == "set-3" and len(env.message.verdicts) == 2
        assert first.judge.calls == 0 and second.judge.calls == 4
    finally:
        second.stop()


def test_label_pairing_failed_side_and_bad_labels(kafka, bus, tmp_path) -> None:
    publisher, reader = bus
    service = Running(_settings(kafka, tmp_path / "state", pairs=[]))
    dlq = EventReader(kafka, [dlq_topic("judge", kafka.topic_prefix)])
    try:
        run = {"judge.pair": "gate-7"}
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-4", "x@2", GOOD, **run, **{"judge.side": "a"}))
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-4", "x@1", PLAIN, **run, **{"judge.side": "b"}))
        failed = _event("set-5", "x@1", "", **run, **{"judge.side": "b"})
        failed.status, failed.error = common_pb2.STATUS_FAILED, "engine down"
        publisher.publish(Topic.DIALOGUE_GENERATED, failed)
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-5", "x@2", GOOD, **run, **{"judge.side": "a"}))
        publisher.publish(Topic.DIALOGUE_GENERATED, _event("set-6", "x@2", GOOD, **run))  # no side label
        got = {e.message.image_set_id: e.message for e in reader.read(2, timeout=60)}
        assert got["set-4"].system_a == "x@2" and got["set-4"].labels["judge.pair_id"] == "label:gate-7"
        assert all(v.outcome == events_pb2.OUTCOME_A_WINS for v in got["set-4"].verdicts)
        assert "engine down" in got["set-5"].error and not got["set-5"].verdicts
        [letter] = dlq.read(1, timeout=30)
        assert "judge.side" in letter.message.error and letter.message.error_kind == "invalid"
    finally:
        dlq.close()
        service.stop()


def _jpeg(path: Path) -> Path:
    buf = io.BytesIO()
    Image.new("RGB", (900, 600), (10, 90, 200)).save(buf, format="JPEG")
    path.write_bytes(buf.getvalue())
    return path


def test_grpc_compare_and_invalid_argument(kafka, tmp_path) -> None:
    photo = _jpeg(tmp_path / "p1.jpg")
    service = Running(_settings(kafka, tmp_path / "state", images_root=tmp_path, consume=False))
    try:
        stub = judge_pb2_grpc.JudgeServiceStub(grpc.insecure_channel(f"127.0.0.1:{service.handle.grpc_port}"))
        req = judge_pb2.CompareRequest(
            a=events_pb2.DialogueGenerated(
                image_set_id="s", correlation_id="c-s", system="plain", labels={"run": "a"},
                dialogue=common_pb2.Dialogue(text=PLAIN),
                images=[common_pb2.ImageRef(uri=photo.as_uri(), caption="blue")]),
            b=events_pb2.DialogueGenerated(
                image_set_id="s", system="good", labels={"run": "b", "side": "b"},
                dialogue=common_pb2.Dialogue(turns=[common_pb2.Turn(speaker="Ana", text="GOOD and vivid")])),
            criteria=["engagement"],
        )
        judgement = stub.Compare(req, timeout=60).result
        # the JudgementCompleted the Kafka path publishes: ids, systems and labels (a's win) from the pair
        assert (judgement.image_set_id, judgement.correlation_id, judgement.system_a, judgement.system_b) == (
            "s", "c-s", "plain", "good")
        assert dict(judgement.labels) == {"run": "a", "side": "b"} and judgement.completed_at.seconds > 0
        [v] = judgement.verdicts
        assert v.outcome == events_pb2.OUTCOME_B_WINS and v.judge == "scripted:prefers-good"
        assert v.rubric_version == "v1" and service.judge.images_seen == 2  # one image, two orders
        for bad, reason in [
            (judge_pb2.CompareRequest(a=events_pb2.DialogueGenerated(dialogue=common_pb2.Dialogue(text="x"))),
             "must both have text"),
            (judge_pb2.CompareRequest(a=req.a, b=req.b, criteria=["beauty"]), "unknown criteria"),
            (judge_pb2.CompareRequest(a=req.a, b=req.b, judges=["openai:gpt-x"]), "not configured"),
        ]:
            with pytest.raises(grpc.RpcError) as err:
                stub.Compare(bad, timeout=30)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and reason in err.value.details()
    finally:
        service.stop()
