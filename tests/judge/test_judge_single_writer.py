"""Judge pairing has one writer per pair: the replica that owns the pair's partition. Two replicas on one
shared state folder never expire or judge each other's pairs, and a judge SIGKILLed mid-judging loses
nothing and judges nothing twice after it restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from judge_fake_apis import KEY, FakeAPI, prefers
from judge_scripted import ScriptedJudge

from vispod.common.bus import EventPublisher, EventReader, ensure_topics
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic, topic_name
from vispod.judge.backends.base import Completion, JudgePrompt
from vispod.judge.judging import Comparer
from vispod.judge.protocol import Panel
from vispod.judge.rubrics import load_rubric
from vispod.judge.service import build
from vispod.judge.settings import JudgeSettings
from vispod.v1 import common_pb2, events_pb2


class SlowJudge(ScriptedJudge):
    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def complete(self, prompt: JudgePrompt) -> Completion:
        time.sleep(self.delay_s)
        return super().complete(prompt)


def _side(image_set: str, system: str, text: str) -> events_pb2.DialogueGenerated:
    return events_pb2.DialogueGenerated(image_set_id=image_set, system=system, status=common_pb2.STATUS_OK,
                                        correlation_id=f"c-{image_set}", dialogue=common_pb2.Dialogue(text=text))


def _publish_pairs(kafka: KafkaSettings, image_sets: list[str]) -> None:
    publisher = EventPublisher(kafka, "test")
    try:
        for s in image_sets:
            publisher.publish(Topic.DIALOGUE_GENERATED, _side(s, "base", "Speaker 1: plain.\nSpeaker 2: yes."))
            publisher.publish(Topic.DIALOGUE_GENERATED, _side(s, "cand", "Speaker 1: GOOD dawn.\nSpeaker 2: red boat."))
    finally:
        publisher.close()


def _judgements(kafka: KafkaSettings, expect: int, settle_s: float) -> list[events_pb2.JudgementCompleted]:
    """Committed JudgementCompleted events: waits for `expect`, then `settle_s` more for any extra."""
    reader = EventReader(kafka, [Topic.JUDGEMENT_COMPLETED])
    try:
        got = reader.read(expect, timeout=120)
        got += reader.read(1, timeout=settle_s)
    finally:
        reader.close()
    return [e.message for e in got]


def test_a_replica_never_expires_a_pair_another_is_judging(kafka: KafkaSettings, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_topics(kafka, [topic_name(Topic.DIALOGUE_GENERATED, kafka.topic_prefix)], partitions=2)
    settings = JudgeSettings(kafka=kafka, grpc_port=0, metrics_port=0, state_dir=tmp_path / "shared-state",
                             criteria=["naturalness"], pairs=[{"a": "cand", "b": "base"}],
                             pair_timeout_s=1.0, sweep_interval_s=0.2, shutdown_grace_s=0.5)
    replicas = []
    try:
        for name in ("judge-a", "judge-b"):  # two pods: their own transactional ids, one state volume
            monkeypatch.setenv("HOSTNAME", name)
            judge = SlowJudge(delay_s=1.2)  # judging one pair (both orders) takes ~2.4 s > the timeout
            replicas.append(build(settings, Comparer(settings, Panel([judge], load_rubric("v1")))).start())
        deadline = time.monotonic() + 90
        while not all(handle.consumers[0].assigned for handle in replicas):
            assert time.monotonic() < deadline, "the two replicas never split the partitions"
            time.sleep(0.2)
        assert replicas[0].consumers[0].assigned.isdisjoint(replicas[1].consumers[0].assigned)

        _publish_pairs(kafka, ["x-1", "x-2"])
        out = _judgements(kafka, 2, settle_s=6)
    finally:
        for handle in replicas:
            handle.stop()
    per_pair = Counter(j.image_set_id for j in out)
    assert per_pair == {"x-1": 1, "x-2": 1}, [(j.image_set_id, j.error) for j in out]
    assert all(not j.error and j.verdicts for j in out)


def _judge_process(kafka: KafkaSettings, state: Path, api: FakeAPI, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VISPOD_KAFKA_BOOTSTRAP": kafka.bootstrap, "VISPOD_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "VISPOD_JUDGE_JUDGES": '["openai:gpt-test"]', "VISPOD_JUDGE_OPENAI_BASE_URL": api.url + "/v1",
           "VISPOD_JUDGE_OPENAI_API_KEY": KEY, "VISPOD_JUDGE_CRITERIA": '["naturalness"]',
           "VISPOD_JUDGE_PAIRS": json.dumps([{"a": "cand", "b": "base"}]), "VISPOD_JUDGE_STATE_DIR": str(state),
           "VISPOD_JUDGE_GRPC_PORT": "0", "VISPOD_JUDGE_METRICS_PORT": "0", "VISPOD_JUDGE_SEND_IMAGES": "false",
           "HOSTNAME": "judge-0", "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "vispod.judge"], env=env, stdout=out, stderr=subprocess.STDOUT)


def test_sigkill_mid_judging_loses_nothing_and_judges_nothing_twice(kafka: KafkaSettings, tmp_path: Path) -> None:
    image_sets = [f"k-{i}" for i in range(4)]
    consistent = prefers("GOOD")

    def slow(prompt: str) -> str:
        time.sleep(0.8)
        return consistent(prompt)

    with FakeAPI("openai", slow) as api:
        log = tmp_path / "judge.log"
        first = _judge_process(kafka, tmp_path / "state", api, log)
        try:
            _publish_pairs(kafka, image_sets)
            deadline = time.monotonic() + 120
            while len(api.requests) < 3:  # mid-judging: the second pair's first call is in flight
                assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        finally:
            if first.poll() is None:
                first.kill()
        second = _judge_process(kafka, tmp_path / "state", api, log)
        try:
            out = _judgements(kafka, len(image_sets), settle_s=8)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(60)
    per_pair = Counter(j.image_set_id for j in out)
    assert per_pair == dict.fromkeys(image_sets, 1), per_pair  # every pair judged, each exactly once
    for j in out:
        assert not j.error and [v.outcome for v in j.verdicts] == [events_pb2.OUTCOME_A_WINS], j
