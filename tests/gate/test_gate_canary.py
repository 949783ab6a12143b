"""The canary's decision: the sign test keeps its stated error rates, guards and the time limit roll back, the monitor
counts live dialogues it scores itself (never a MetricsComputed), and sends one signed command per verdict."""

from __future__ import annotations

import random
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vispod.common.events import Envelope
from vispod.common.lifecycle_signing import verify_command
from vispod.common.signing import Keyring, Signer
from vispod.common.topics import Topic
from vispod.gate.canary import (
    GATE_LABEL,
    PROMOTE,
    ROLLBACK,
    WAIT,
    CanaryMonitor,
    CanaryPolicy,
    count,
    new_progress,
    pair,
    verdict,
)
from vispod.gate.sequential import CONTINUE, NO_WORSE, WORSE, SignTest
from vispod.v1 import common_pb2, events_pb2, generator_pb2, metrics_pb2

S = events_pb2.AdapterState
POLICY = CanaryPolicy(SignTest(0.05, 0.10, 0.7), min_samples=5, max_duration_s=600)


def run_sign_test(test: SignTest, p_worse: float, rng: random.Random, limit: int = 2000) -> str:
    llr = 0.0
    for _ in range(limit):
        llr += test.step(rng.random() < p_worse)
        if (state := test.state(llr)) != CONTINUE:
            return state
    return CONTINUE


def test_the_sign_test_keeps_its_stated_error_rates() -> None:
    test, rng, runs = SignTest(0.05, 0.10, 0.7), random.Random(7), 4000
    false_rollbacks = sum(run_sign_test(test, 0.5, rng) == WORSE for _ in range(runs)) / runs
    false_promotions = sum(run_sign_test(test, 0.7, rng) == NO_WORSE for _ in range(runs)) / runs
    assert false_rollbacks <= 0.05 and false_promotions <= 0.10
    assert sum(run_sign_test(test, 0.85, rng) == WORSE for _ in range(400)) / 400 > 0.95   # a bad canary is caught
    assert test.split(2).alpha == 0.025 and test.split(2).upper > test.upper


def progress_with(pairs: list[tuple[float, float]]) -> events_pb2.CanaryProgress:
    """(canary repetition, active repetition) pairs, one dialogue each side, all OK at 1 s."""
    p = new_progress("c@1", "a@1", 1000.0)
    for c, a in pairs:
        count(p, "canary", True, 1.0)
        pair(p, "canary", {"repetition": c}, POLICY)
        count(p, "active", True, 1.0)
        pair(p, "active", {"repetition": a}, POLICY)
    return p


def test_worse_pairs_roll_back_better_ones_promote_ties_say_nothing() -> None:
    # Bounds with alpha 0.05 over two metrics: a worse pair moves ln(0.7/0.5), a better one ln(0.3/0.5).
    assert verdict(progress_with([(0.2, 0.1)] * 10), POLICY, 1010.0)[0] == WAIT
    step, reason = verdict(progress_with([(0.2, 0.1)] * 11), POLICY, 1010.0)
    assert step == ROLLBACK and "worse on repetition" in reason
    assert verdict(progress_with([(0.1, 0.2)] * 4), POLICY, 1010.0)[0] == WAIT   # not yet across the lower bound
    step, reason = verdict(progress_with([(0.1, 0.2)] * 6), POLICY, 1010.0)
    assert step == PROMOTE and "no worse" in reason
    ties = progress_with([(0.1, 0.1)] * 30)
    assert verdict(ties, POLICY, 1010.0)[0] == WAIT and "repetition" not in ties.pairs


def test_guards_and_the_time_limit_roll_back() -> None:
    failing = progress_with([(0.1, 0.2)] * 2)
    for _ in range(4):
        count(failing, "canary", False, 0.0)
        count(failing, "active", True, 1.0)
    assert verdict(failing, POLICY, 1010.0)[1].startswith("error guard")
    slow = progress_with([])
    for _ in range(5):
        count(slow, "canary", True, 4.0)
        count(slow, "active", True, 1.0)
    assert verdict(slow, POLICY, 1010.0)[1].startswith("latency guard")
    step, reason = verdict(progress_with([(0.1, 0.2)] * 2), POLICY, 1000.0 + 600)
    assert step == ROLLBACK and reason.startswith("time limit")


class Generator:
    """ListAdapters as the generator answers it (a plain object answering like the gRPC stub)."""

    def __init__(self) -> None:
        self.adapters = {"a@1": S.ADAPTER_STATE_ACTIVE, "c@1": S.ADAPTER_STATE_CANARY}

    def ListAdapters(self, request, timeout=None):
        active = next((a for a, s in self.adapters.items() if s == S.ADAPTER_STATE_ACTIVE), "")
        return generator_pb2.ListAdaptersResponse(active_adapter_id=active, adapters=[
            generator_pb2.AdapterInfo(adapter_id=a, state=s) for a, s in self.adapters.items()])


class Metrics:
    """Score as the metrics service answers it: repetition by adapter (named in the dialogue's text)."""

    def __init__(self, repetition: dict[str, float]) -> None:
        self.repetition, self.calls = repetition, 0

    def Score(self, request, timeout=None):
        self.calls += 1
        rate = next(v for k, v in self.repetition.items() if k in request.generated.dialogue.text)
        return metrics_pb2.ScoreResponse(result=events_pb2.MetricsComputed(
            style=common_pb2.StyleMetrics(repeated_4gram_rate=rate),
            grounding=common_pb2.GroundingMetrics(clipscore=50.0, random_weights=True)))


def dialogue(adapter: str, ok: bool = True, **labels: str) -> Envelope:
    d = events_pb2.DialogueGenerated(image_set_id=uuid.uuid4().hex, adapter_id=adapter, labels=labels,
                                     status=common_pb2.STATUS_OK if ok else common_pb2.STATUS_FAILED,
                                     latency_seconds=1.0, dialogue=common_pb2.Dialogue(text=f"{adapter} speaks"))
    return Envelope(uuid.uuid4().hex, d.DESCRIPTOR.full_name, "test", "", d)


def test_the_monitor_scores_live_dialogues_itself_and_sends_one_signed_command() -> None:
    gen, signer = Generator(), Signer(Ed25519PrivateKey.generate(), "gate")
    metrics = Metrics({"c@1": 0.30, "a@1": 0.05, "d@1": 0.01})
    monitor = CanaryMonitor(gen, metrics, POLICY, signer, refresh_s=0)
    # A MetricsComputed is not what it reads: refused as the wrong event, whatever it claims.
    forged = events_pb2.MetricsComputed(adapter_id="c@1", style=common_pb2.StyleMetrics(repeated_4gram_rate=0.0))
    try:
        monitor.handle(Envelope("f", forged.DESCRIPTOR.full_name, "attacker", "", forged))
        raise AssertionError("a MetricsComputed was accepted as canary evidence")
    except ValueError:
        pass
    assert monitor.handle(dialogue("c@1", **{GATE_LABEL: "c@1"})) == []     # the gate's own evaluation traffic
    assert monitor.handle(dialogue("other@1")) == []                          # asked for by id
    outputs = []
    for _ in range(11):
        outputs += monitor.handle(dialogue("a@1")) + monitor.handle(dialogue("c@1"))
    saved = [o for o in outputs if o.topic == Topic.GATE_CANARY]
    [command] = [o.message for o in outputs if o.topic == Topic.ADAPTER_LIFECYCLE]
    assert len(saved) == 22 and saved[-1].key == b"c@1" and saved[-1].message.decision == ROLLBACK
    assert (command.adapter_id, command.state) == ("c@1", S.ADAPTER_STATE_CANDIDATE)
    assert command.reason.startswith("canary rollback: sign test") and command.evidence["repetition_pairs"] == 11
    assert verify_command(command, Keyring({"gate": signer.public_key})) == "gate"
    assert monitor.handle(dialogue("c@1")) == []     # decided: nothing more until the generator applies it

    gen.adapters.update({"c@1": S.ADAPTER_STATE_CANDIDATE, "d@1": S.ADAPTER_STATE_CANARY})
    outputs = []
    for _ in range(7):
        outputs += monitor.handle(dialogue("d@1")) + monitor.handle(dialogue("a@1"))
    [command] = [o.message for o in outputs if o.topic == Topic.ADAPTER_LIFECYCLE]
    assert (command.adapter_id, command.state) == ("d@1", S.ADAPTER_STATE_ACTIVE)
