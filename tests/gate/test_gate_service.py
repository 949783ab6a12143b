"""The gate on the real broker with scripted generator/metrics/judge gRPC servers: promote, keep as candidate
(win rate, grounding), roll back a canary, failed evaluations, idempotency, DLQ, metrics and the decisions log."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from gate_scripted import ScriptedGenerator, ScriptedJudge, ScriptedMetrics, Servers
from prometheus_client import REGISTRY

from vispod.common.bus import EventPublisher, EventReader, read_events
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic, dlq_topic
from vispod.gate.service import build
from vispod.gate.settings import GateSettings
from vispod.v1 import events_pb2

S = events_pb2.AdapterState


def settings(kafka: KafkaSettings, tmp_path: Path, set_dir: Path, gen: str, met: str, jud: str,
             **kw: object) -> GateSettings:
    base: dict = dict(kafka=kafka, artifact_root=tmp_path / "artifacts", eval_set=set_dir, generator_addr=gen,
                      metrics_addr=met, judge_addr=jud, metrics_port=0, candidate_wait_s=5, poll_interval_s=0.05,
                      rpc_timeout_s=10, evaluation_timeout_s=60, shutdown_drain_s=0)
    base.update(kw)
    return GateSettings(**base)


@contextmanager
def running_gate(s: GateSettings) -> Iterator[int]:
    handle = build(s).start()
    try:
        yield handle.metrics_port
    finally:
        handle.stop()


def publish(kafka: KafkaSettings, *adapter_ids: str) -> None:
    pub = EventPublisher(kafka, "trainer")
    try:
        for adapter_id in adapter_ids:
            name, _, version = adapter_id.partition("@")
            pub.publish(Topic.ADAPTER_PUBLISHED, events_pb2.AdapterPublished(adapter_id=adapter_id, name=name,
                                                                             version=version))
    finally:
        pub.close()


def gate_events(kafka: KafkaSettings, count: int, timeout: float = 90) -> list[events_pb2.AdapterLifecycleChanged]:
    found = read_events(kafka, [Topic.ADAPTER_LIFECYCLE], count, timeout=timeout,
                        where=lambda e: e.message.actor == "gate")
    assert len(found) == count, f"expected {count} gate decisions, got {len(found)}"
    return [e.message for e in found]


def decisions(s: GateSettings) -> list[dict]:
    return [json.loads(line) for line in s.decisions_path().read_text().splitlines()]


def counter(decision: str) -> float:
    return REGISTRY.get_sample_value("vispod_gate_decisions_total", {"decision": decision}) or 0.0


def consumed() -> float:
    labels = {"service": "gate", "topic": "adapter.published", "outcome": "ok"}
    return REGISTRY.get_sample_value("vispod_bus_events_consumed_total", labels) or 0.0


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_promotes_a_winner_once_and_reports_it(kafka: KafkaSettings, tmp_path: Path, builtin_set: Path,
                                               servers: Servers) -> None:
    gen = ScriptedGenerator()
    gen.register("pod@1", S.ADAPTER_STATE_ACTIVE)
    gen.register("pod@2")
    # 4 judges x 3 stories, the candidate (A) wins all. The story is the unit: n = 3, lower bound 0.44, so
    # this gate is configured to accept a lower bound above 0.4.
    judge = ScriptedJudge()
    s = settings(kafka, tmp_path, builtin_set, servers.serve(gen), servers.serve(ScriptedMetrics()),
                 servers.serve(judge), min_win_rate_lower=0.4, canary_share=0)  # straight to ACTIVE (no canary)
    before, handled = counter("promote"), consumed()
    with running_gate(s) as metrics_port:
        publish(kafka, "pod@2")
        [event] = gate_events(kafka, 1)
        assert (event.adapter_id, event.state, event.previous_state) == ("pod@2", S.ADAPTER_STATE_ACTIVE,
                                                                         S.ADAPTER_STATE_CANDIDATE)
        assert event.evidence["n"] == 3 and event.evidence["win_rate"] == 1.0 and event.evidence["wins"] == 12
        assert event.evidence["win_rate_lower"] > 0.4 and event.evidence["grounding_delta"] == 0.0
        assert event.reason.startswith("promote: naturalness win rate 1.000")
        assert gen.active == "pod@2" and gen.updates == [("pod@2", "ACTION_PROMOTE")]
        assert sorted(gen.generated) == ["pod@1"] * 3 + ["pod@2"] * 3  # candidate vs the active adapter
        assert {(r.a.system, r.b.system) for r in judge.requests} == {("pod@2", "pod@1")}

        publish(kafka, "pod@2")  # the same immutable version again: decided already, nothing re-evaluated
        wait_for(lambda: consumed() == handled + 2)
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert 'vispod_gate_decisions_total{decision="promote"}' in text
        assert "vispod_gate_evaluation_seconds_count" in text
    assert counter("promote") == before + 1
    assert len(gen.generated) == 6 and len(decisions(s)) == 1
    [entry] = decisions(s)
    assert entry["decision"] == "promote" and entry["baseline"] == "pod@1" and entry["applied_via_grpc"] == "ACTIVE"
    assert len(entry["stories"]) == 3
    report = s.report_file().read_text()
    assert "pod@2" in report and "data:image/png;base64," in report


def test_keeps_losers_as_candidates_and_rolls_back_a_canary(kafka: KafkaSettings, tmp_path: Path, builtin_set: Path,
                                                            servers: Servers) -> None:
    gen = ScriptedGenerator()
    gen.register("pod@1", S.ADAPTER_STATE_ACTIVE)
    gen.register("pod@2", S.ADAPTER_STATE_CANARY)  # a canary that does not beat the active adapter
    gen.register("pod@3")  # wins every verdict, but its grounding drops by 5 CLIPScore points
    judge = ScriptedJudge(outcomes=[events_pb2.OUTCOME_TIE])
    metrics = ScriptedMetrics(clipscore={"pod@3": 15.0}, default=20.0)
    s = settings(kafka, tmp_path, builtin_set, servers.serve(gen), servers.serve(metrics), servers.serve(judge),
                 min_win_rate_lower=0.4)  # 3 stories won outright clear 0.4 (see above)
    with running_gate(s):
        publish(kafka, "pod@2")
        [first] = gate_events(kafka, 1)
        judge.outcomes = [events_pb2.OUTCOME_A_WINS]
        publish(kafka, "pod@3")
        _, second = gate_events(kafka, 2)
    assert (first.state, first.previous_state) == (S.ADAPTER_STATE_CANDIDATE, S.ADAPTER_STATE_CANARY)
    assert "lower bound not above 0.4" in first.reason and first.evidence["win_rate"] == 0.5
    assert (second.adapter_id, second.state) == ("pod@3", S.ADAPTER_STATE_CANDIDATE)
    assert "CLIPScore fell by 5.00" in second.reason and second.evidence["grounding_delta"] == -5.0
    assert gen.active == "pod@1"  # the active adapter kept serving throughout
    assert gen.updates == [("pod@2", "ACTION_ROLLBACK")]  # canary -> candidate; pod@3 needed no change
    assert gen.states["pod@2"] == S.ADAPTER_STATE_CANDIDATE and gen.states["pod@3"] == S.ADAPTER_STATE_CANDIDATE
    assert [d["decision"] for d in decisions(s)] == ["reject", "reject"]


def test_failed_evaluations_are_recorded_not_retried_and_bad_events_go_to_the_dlq(
        kafka: KafkaSettings, tmp_path: Path, builtin_set: Path, servers: Servers) -> None:
    gen = ScriptedGenerator()
    gen.register("pod@1", S.ADAPTER_STATE_ACTIVE)
    gen.register("pod@2")
    gen.register("pod@4")
    gen.failing.add("pod@4")  # the candidate's generations fail: losses, not an error
    dead_judge = "127.0.0.1:1"  # nothing listens there
    s = settings(kafka, tmp_path, builtin_set, servers.serve(gen), servers.serve(ScriptedMetrics()), dead_judge,
                 candidate_wait_s=1, rpc_timeout_s=3, reject_action="reject")
    before = counter("reject")
    with running_gate(s):
        publish(kafka, "pod@2", "pod@9", "not-an-id", "pod@4")  # judge down; never registered; malformed; failing
        events = gate_events(kafka, 3)
        reader = EventReader(kafka, [dlq_topic("gate", kafka.topic_prefix)])
        [dead] = [e.message for e in reader.read(1, timeout=30)]
        reader.close()
    by_id = {e.adapter_id: e for e in events}
    assert "evaluation failed: judging story" in by_id["pod@2"].reason and "UNAVAILABLE" in by_id["pod@2"].reason
    assert "did not register pod@9" in by_id["pod@9"].reason
    assert by_id["pod@2"].state == S.ADAPTER_STATE_REJECTED  # reject_action=reject
    assert "lower bound" in by_id["pod@4"].reason and by_id["pod@4"].evidence["losses"] == 3
    assert dead.error_kind == "invalid" and "name@version" in dead.error
    assert gen.active == "pod@1"
    assert ("pod@2", "ACTION_REJECT") in gen.updates
    assert counter("reject") == before + 3
    logged = decisions(s)
    assert [d["failed"] for d in logged] == [True, True, False]
    assert all(d["reason"] for d in logged)


def test_settings_refuse_an_evaluation_longer_than_the_poll_interval() -> None:
    with pytest.raises(ValueError, match="max poll interval"):
        GateSettings(evaluation_timeout_s=3600)


def test_a_winner_goes_to_canary_first_with_a_signed_command(kafka: KafkaSettings, tmp_path: Path,
                                                            builtin_set: Path, servers: Servers) -> None:
    from vispod.common.lifecycle_signing import verify_command
    from vispod.common.signing import Keyring, Signer, generate_keypair

    key, _ = generate_keypair(tmp_path / "keys", "gate")
    gen = ScriptedGenerator()
    gen.register("pod@1", S.ADAPTER_STATE_ACTIVE)
    gen.register("pod@2")
    s = settings(kafka, tmp_path, builtin_set, servers.serve(gen), servers.serve(ScriptedMetrics()),
                 servers.serve(ScriptedJudge()), min_win_rate_lower=0.4, signing_key_file=key)
    assert s.canary_share == 0.1   # the default: canary first
    with running_gate(s):
        publish(kafka, "pod@2")
        [event] = gate_events(kafka, 1)
    assert (event.adapter_id, event.state, event.canary_share) == ("pod@2", S.ADAPTER_STATE_CANARY, 0.1)
    assert verify_command(event, Keyring({"gate": Signer.from_file(key, "gate").public_key})) == "gate"
    assert gen.updates == [("pod@2", "ACTION_CANARY")] and gen.active == "pod@1"
    [entry] = decisions(s)
    assert entry["applied_state"] == "CANARY" and entry["canary_share"] == 0.1
