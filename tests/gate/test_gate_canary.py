"""The canary verdict (pure) and the monitor's bookkeeping: which side a metric counts for, when evidence resets,
one signed command per verdict."""

from __future__ import annotations

import math
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vispod.common.events import Envelope
from vispod.common.lifecycle_signing import verify_command
from vispod.common.signing import Keyring, Signer
from vispod.gate.canary import GATE_LABEL, PROMOTE, ROLLBACK, WAIT, Bands, CanaryMonitor, Side, verdict
from vispod.v1 import common_pb2, events_pb2, generator_pb2

S = events_pb2.AdapterState
BANDS = Bands(min_samples=5, promote_after=10, max_grounding_drop=2.0, max_repetition_rise=0.05)


def metrics(adapter_id: str, clipscore: float = 30.0, repetition: float = 0.01, **labels: str):
    return events_pb2.MetricsComputed(image_set_id=uuid.uuid4().hex, adapter_id=adapter_id, labels=labels,
                                      grounding=common_pb2.GroundingMetrics(clipscore=clipscore),
                                      style=common_pb2.StyleMetrics(repeated_4gram_rate=repetition))


def side(n: int, clipscore: float = 30.0, repetition: float = 0.01) -> Side:
    s = Side()
    for _ in range(n):
        s.add(metrics("x", clipscore, repetition))
    return s


def test_no_verdict_before_both_sides_have_the_minimum():
    assert verdict(side(4, 10.0), side(50), BANDS)[0] == WAIT
    assert verdict(side(50, 10.0), side(4), BANDS)[0] == WAIT


def test_rollback_beyond_a_band_and_not_within_it():
    step, reason, evidence = verdict(side(5, 27.5), side(5, 30.0), BANDS)
    assert step == ROLLBACK and "mean CLIPScore" in reason and evidence["grounding_delta"] == -2.5
    assert verdict(side(5, 28.5), side(5, 30.0), BANDS)[0] == WAIT            # 1.5 points: within the band
    step, reason, _ = verdict(side(5, repetition=0.09), side(5, repetition=0.01), BANDS)
    assert step == ROLLBACK and "repeated 4-gram rate" in reason
    assert verdict(side(5, 35.0), side(5, 30.0), BANDS)[0] == WAIT            # better is never a regression


def test_promotion_after_enough_clean_canary_samples():
    assert verdict(side(9, 29.0), side(9), BANDS)[0] == WAIT
    step, reason, _ = verdict(side(10, 29.0), side(10), BANDS)
    assert step == PROMOTE and "10 canary samples" in reason


def test_a_missing_metric_is_not_evidence():
    no_grounding = Side()
    for _ in range(10):
        no_grounding.add(events_pb2.MetricsComputed(adapter_id="x", style=common_pb2.StyleMetrics(
            repeated_4gram_rate=0.01), grounding=common_pb2.GroundingMetrics(clipscore=math.nan)))
    assert no_grounding.grounding == [] and verdict(no_grounding, side(10), BANDS)[0] == PROMOTE


class Generator:
    """What the monitor reads of the generator: ListAdapters (a plain object answering like the gRPC stub)."""

    def __init__(self) -> None:
        self.adapters = {"a@1": S.ADAPTER_STATE_ACTIVE, "c@1": S.ADAPTER_STATE_CANARY}

    def ListAdapters(self, request, timeout=None):
        active = next((a for a, s in self.adapters.items() if s == S.ADAPTER_STATE_ACTIVE), "")
        return generator_pb2.ListAdaptersResponse(active_adapter_id=active, adapters=[
            generator_pb2.AdapterInfo(adapter_id=a, state=s, canary_share=0.1 if s == S.ADAPTER_STATE_CANARY else 0)
            for a, s in self.adapters.items()])


def handle(monitor: CanaryMonitor, m: events_pb2.MetricsComputed):
    return monitor.handle(Envelope(uuid.uuid4().hex, m.DESCRIPTOR.full_name, "test", "", m))


def test_the_monitor_counts_each_side_sends_one_signed_command_and_resets_for_a_new_canary():
    gen, signer = Generator(), Signer(Ed25519PrivateKey.generate(), "gate")
    monitor = CanaryMonitor(gen, BANDS, signer, refresh_s=0)
    for _ in range(5):
        assert handle(monitor, metrics("a@1")) == []
        assert handle(monitor, metrics("c@1", 20.0, **{GATE_LABEL: "c@1"})) == []   # the gate's own traffic
        assert handle(monitor, metrics("other@1", 5.0)) == []                       # asked for by id
    outputs = []
    for _ in range(5):
        outputs += handle(monitor, metrics("c@1", 25.0))
    [out] = outputs
    cmd = out.message
    assert (cmd.adapter_id, cmd.state, cmd.previous_state) == ("c@1", S.ADAPTER_STATE_CANDIDATE, S.ADAPTER_STATE_CANARY)
    assert cmd.reason.startswith("canary rollback: canary regressed") and cmd.evidence["grounding_delta"] == -5.0
    assert verify_command(cmd, Keyring({"gate": signer.public_key})) == "gate"
    assert handle(monitor, metrics("c@1", 25.0)) == []                 # decided: nothing more until it changes

    gen.adapters.update({"c@1": S.ADAPTER_STATE_CANDIDATE, "d@1": S.ADAPTER_STATE_CANARY})
    for _ in range(9):
        assert handle(monitor, metrics("d@1", 31.0)) == [] and handle(monitor, metrics("a@1")) == []
    [out] = handle(monitor, metrics("d@1", 31.0))                       # fresh evidence: 10 clean samples
    assert (out.message.adapter_id, out.message.state) == ("d@1", S.ADAPTER_STATE_ACTIVE)
