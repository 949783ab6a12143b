"""The gate's event handler against scripted gRPC services (no broker): redelivery re-emits the recorded decision
without evaluating again, a generator that comes up late is waited for, NaN evidence keeps the log strict JSON."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest
from gate_scripted import ScriptedGenerator, ScriptedJudge, ScriptedMetrics, Servers

from vispod.common.events import Envelope
from vispod.gate.clients import Clients
from vispod.gate.evalset import load_eval_set
from vispod.gate.gate import EvaluationFailed, Gate, _Deadline
from vispod.gate.settings import GateSettings
from vispod.v1 import events_pb2

S = events_pb2.AdapterState


def _gate(tmp_path: Path, set_dir: Path, gen: str, met: str, jud: str, **kw: object) -> Gate:
    # The built-in set has 3 stories and the story is the statistical unit: 3 of 3 wins has a Wilson lower bound
    # of 0.44, so these gates promote on a lower bound above 0.4.
    kw.setdefault("min_win_rate_lower", 0.4)
    settings = GateSettings(artifact_root=tmp_path / "gate", generator_addr=gen, metrics_addr=met, judge_addr=jud,
                            candidate_wait_s=5, poll_interval_s=0.05, rpc_timeout_s=5, **kw)
    return Gate(settings, Clients(gen, met, jud), load_eval_set(set_dir))


def _envelope(adapter_id: str, event_id: str) -> Envelope:
    return Envelope(event_id, "vispod.v1.AdapterPublished", "test", "", events_pb2.AdapterPublished(
        adapter_id=adapter_id))


def test_redelivery_re_emits_the_same_decision_without_evaluating(tmp_path: Path, builtin_set: Path,
                                                                  servers: Servers) -> None:
    gen = ScriptedGenerator()
    gen.register("pod@1")
    gate = _gate(tmp_path, builtin_set, servers.serve(gen), servers.serve(ScriptedMetrics()),
                 servers.serve(ScriptedJudge()), canary_share=0)  # straight to ACTIVE (no canary)
    [first] = gate.handle(_envelope("pod@1", "e-1"))
    calls = len(gen.generated)
    [again] = gate.handle(_envelope("pod@1", "e-1"))
    assert again.message == first.message and len(gen.generated) == calls == 6
    assert first.message.state == S.ADAPTER_STATE_ACTIVE and first.message.actor == "gate"
    assert gen.updates == [("pod@1", "ACTION_PROMOTE")]  # applied once
    assert gate.handle(_envelope("pod@1", "e-2")) == []  # a new publication of a decided version: ignored
    gate.clients.close()


def test_waits_for_a_generator_that_comes_up_late_and_refuses_nan_grounding(tmp_path: Path, builtin_set: Path,
                                                                               servers: Servers) -> None:
    import socket

    with socket.socket() as probe:  # a free port the generator will listen on shortly
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gen = ScriptedGenerator()
    gen.register("pod@1")
    metrics = ScriptedMetrics(clipscore={"pod@1": float("nan")})
    gate = _gate(tmp_path, builtin_set, f"127.0.0.1:{port}", servers.serve(metrics), servers.serve(ScriptedJudge()))

    def start_late() -> None:
        import time
        from concurrent import futures

        import grpc

        from vispod.v1 import generator_pb2_grpc

        time.sleep(1.0)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        generator_pb2_grpc.add_GeneratorServiceServicer_to_server(gen, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        late.append(server)

    late: list = []
    threading.Thread(target=start_late).start()
    try:
        [out] = gate.handle(_envelope("pod@1", "e-1"))
    finally:
        for server in late:
            server.stop(0)
        gate.clients.close()
    assert len(gen.generated) == 6  # evaluated once the generator answered
    line = gate.log.path.read_text().splitlines()[0]
    entry = json.loads(line)  # strict JSON: NaN became null
    assert "NaN" not in line and entry["stories"][0]["clipscore_candidate"] is None
    # a NaN CLIPScore is no measurement: the candidate wins every verdict, yet is not promoted blind
    assert out.message.state == S.ADAPTER_STATE_CANDIDATE and "grounding was not measured" in out.message.reason
    assert "grounding_delta" not in out.message.evidence


class _BudgetSpentAfter(_Deadline):
    """The evaluation budget, spent after `calls` RPC timeouts were handed out."""

    def __init__(self, calls: int) -> None:
        super().__init__(60.0, 5.0)
        self.calls = calls

    def timeout(self) -> float:
        self.calls -= 1
        if self.calls < 0:
            raise EvaluationFailed(f"evaluation exceeded its budget of {self.seconds:g} s")
        return self.rpc_timeout


def test_a_spent_budget_fails_the_evaluation_not_the_candidates_stories(tmp_path: Path, builtin_set: Path,
                                                                         servers: Servers) -> None:
    gen = ScriptedGenerator()
    gen.register("pod@1")
    gate = _gate(tmp_path, builtin_set, servers.serve(gen), servers.serve(ScriptedMetrics()),
                 servers.serve(ScriptedJudge()))
    # Spent once the adapters were listed: the budget ends the evaluation (it once counted as a loss per story).
    with pytest.raises(EvaluationFailed, match="budget"):
        gate._evaluate("pod@1", _BudgetSpentAfter(1))
    gen.failing.add("pod@1")   # a FAILED dialogue is the candidate's loss, and the evaluation goes on
    evidence = gate._evaluate("pod@1", _BudgetSpentAfter(100))
    assert evidence.outcomes == [["loss"]] * 3 and all("malformed output" in n for n in evidence.notes)


PLAN = """version: 1
decision:
  min_superior: 1
  metrics:
    - {metric: format.valid, role: superiority, delta: 0.05}
    - {metric: hallucination.rate, role: non_inferiority, delta: 0.05, better: lower}
"""


@pytest.mark.parametrize(("rates", "decision", "clue"), [
    ({"pod@1": 0.10, "base": 0.10}, "promote", "plan: non-inferior to base"),
    ({"pod@1": 0.40, "base": 0.10}, "reject", "but the plan's rule: inferior or unmeasured against base: "
                                              "hallucination.rate"),
    ({"base": 0.10}, "reject", "unmeasured against base: hallucination.rate"),
])
def test_with_a_plan_the_live_gate_also_needs_the_policy_guard(tmp_path: Path, builtin_set: Path, servers: Servers,
                                                              rates: dict, decision: str, clue: str) -> None:
    """The judges prefer the candidate every time; the plan's rule (vispod.gate.policy, the mini-paper's) still
    rejects it when the metrics service finds it hallucinating more than δ beyond the active model."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    gen = ScriptedGenerator()
    gen.register("pod@1")
    gate = _gate(tmp_path, builtin_set, servers.serve(gen), servers.serve(ScriptedMetrics(hallucination=rates)),
                 servers.serve(ScriptedJudge()), canary_share=0, plan_file=plan)
    entry = gate.evaluate_and_record("pod@1")
    assert entry["decision"] == decision and clue in entry["reason"], entry["reason"]
    assert entry["plan_sha256"] == hashlib.sha256(PLAN.encode()).hexdigest()
    assert "win rate" in entry["reason"]  # the judged rule still applies; the plan's guard comes on top


def test_a_candidate_is_evaluated_only_once_an_engine_holds_it(tmp_path: Path, builtin_set: Path,
                                                               servers: Servers) -> None:
    """Registered but not yet servable (vLLM's sync has not loaded it, TGI is still restarting): the gate waits and
    generates nothing; never held within the wait, the evaluation fails with that reason instead of scoring losses."""
    import threading

    gen = ScriptedGenerator(unservable={"pod@1"})
    gen.register("pod@1")
    gate = _gate(tmp_path, builtin_set, servers.serve(gen), servers.serve(ScriptedMetrics()),
                 servers.serve(ScriptedJudge()), canary_share=0)
    threading.Timer(1.0, lambda: gen.unservable.clear()).start()   # the engine loads it a second later
    [decided] = gate.handle(_envelope("pod@1", "e-1"))
    assert decided.message.state == S.ADAPTER_STATE_ACTIVE and len(gen.generated) == 6
    gen.register("pod@2")
    gen.unservable.add("pod@2")
    [failed] = gate.handle(_envelope("pod@2", "e-2"))
    assert "have an engine that holds pod@2" in failed.message.reason and failed.message.state != S.ADAPTER_STATE_ACTIVE
    assert "pod@2" not in gen.generated
    gate.clients.close()


INVALID = events_pb2.OUTCOME_INVALID


@pytest.mark.parametrize(("outcomes", "grounding", "rates", "decision", "missing"), [
    # the judge gives no valid verdict (the CPU cluster's 135M judge): the plan's guard decides alone
    ([INVALID], True, {"pod@1": 0.10, "base": 0.10}, "promote", "the judge gave no valid naturalness verdict"),
    ([INVALID], True, {"pod@1": 0.40, "base": 0.10}, "reject", "the judge gave no valid naturalness verdict"),
    # valid verdicts, but no CLIP weights: the judged rule cannot decide either
    ([events_pb2.OUTCOME_A_WINS], False, {"pod@1": 0.10, "base": 0.10}, "promote", "grounding was not measured"),
    ([events_pb2.OUTCOME_A_WINS], False, {"pod@1": 0.40, "base": 0.10}, "reject", "grounding was not measured"),
])
def test_without_the_judges_evidence_the_plan_decides_alone_and_the_record_says_so(
        tmp_path: Path, builtin_set: Path, servers: Servers, outcomes: list, grounding: bool, rates: dict,
        decision: str, missing: str) -> None:
    """VISPOD_GATE_WITHOUT_JUDGE_EVIDENCE=plan: when the judged rule lacks its evidence, the judge is left out and
    the plan's rule decides on the metrics service's numbers (candidate against the active model) — and can
    reject; the decision record names what decided and why."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    gen = ScriptedGenerator()
    gen.register("pod@1")
    gate = _gate(tmp_path, builtin_set, servers.serve(gen),
                 servers.serve(ScriptedMetrics(hallucination=rates, grounding=grounding)),
                 servers.serve(ScriptedJudge(outcomes=outcomes)), canary_share=0, plan_file=plan,
                 without_judge_evidence="plan")
    [event] = gate.handle(_envelope("pod@1", "e-1"))
    [entry] = gate.log.entries()
    assert entry["decision"] == decision and not entry["failed"], entry["reason"]
    assert entry["decided_by"] == f"plan (judge left out: {missing})"
    assert f"{missing}: the judge is left out" in entry["reason"] and "hallucination.rate" in entry["reason"]
    promoted = event.message.state == S.ADAPTER_STATE_ACTIVE
    assert promoted == (decision == "promote") and (gen.active == "pod@1") == promoted
    gate.clients.close()


def test_by_default_no_valid_verdict_rejects_and_the_judge_decides(tmp_path: Path, builtin_set: Path,
                                                                    servers: Servers) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    gen = ScriptedGenerator()
    gen.register("pod@1")
    gate = _gate(tmp_path, builtin_set, servers.serve(gen), servers.serve(ScriptedMetrics()),
                 servers.serve(ScriptedJudge(outcomes=[INVALID])), canary_share=0, plan_file=plan)
    entry = gate.evaluate_and_record("pod@1")
    assert entry["decision"] == "reject" and "no valid naturalness verdicts" in entry["reason"]
    assert entry["decided_by"] == "judge and plan"
    with pytest.raises(ValueError, match="needs VISPOD_GATE_PLAN_FILE"):
        GateSettings(without_judge_evidence="plan")
    gate.clients.close()
