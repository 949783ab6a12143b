"""The live half of promotion: a candidate the gate passed serves a canary share; its metrics decide the rest.

The metrics service publishes one MetricsComputed per dialogue, carrying the adapter that wrote it. The monitor
compares canary traffic (adapter_id = the canary) with active traffic (adapter_id = the active adapter, "" for
the base model) as the events arrive:
- a regression beyond the configured bands (mean CLIPScore lower, or mean repeated-4-gram rate higher, by
  more than the band) once both sides have `min_samples` → rolled back (signed command: CANARY → CANDIDATE, or
  REJECTED with reject_action=reject);
- `promote_after` canary samples without a regression → promoted (signed command: CANARY → ACTIVE): the gate's
  offline evidence put it on canary, the live evidence confirms it.
Which adapter is canary or active comes from the generator itself (ListAdapters), so forged events on the bus
cannot steer the monitor. Counts live in memory: after a gate restart they start again (a verdict is delayed,
never invented). Every step is an event, a Prometheus metric and a log line.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from vispod.common.bus import Output
from vispod.common.errors import InvalidArgument, Unavailable
from vispod.common.events import Envelope
from vispod.common.lifecycle_signing import sign_command
from vispod.common.signing import Signer
from vispod.common.topics import Topic
from vispod.gate import prom
from vispod.v1 import events_pb2, generator_pb2

log = logging.getLogger(__name__)

S = events_pb2.AdapterState
WAIT, ROLLBACK, PROMOTE = "wait", "rollback", "promote"
GATE_LABEL = "vispod.gate"   # the gate's own evaluation traffic: never canary evidence


@dataclass(frozen=True)
class Bands:
    min_samples: int = 20             # per side, before any verdict
    promote_after: int = 50           # canary samples without a regression
    max_grounding_drop: float = 2.0   # CLIPScore points (0..100 scale), canary mean below active mean
    max_repetition_rise: float = 0.05  # repeated-4-gram rate (0..1), canary mean above active mean


@dataclass
class Side:
    """Running sums of one side's metrics."""

    n: int = 0
    grounding: list[float] = field(default_factory=list)
    repetition: list[float] = field(default_factory=list)

    def add(self, m: events_pb2.MetricsComputed) -> None:
        self.n += 1
        if m.HasField("grounding") and math.isfinite(m.grounding.clipscore):
            self.grounding.append(m.grounding.clipscore)
        if m.HasField("style") and math.isfinite(m.style.repeated_4gram_rate):
            self.repetition.append(m.style.repeated_4gram_rate)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def verdict(canary: Side, active: Side, bands: Bands) -> tuple[str, str, dict[str, float]]:
    """(wait | rollback | promote, reason, evidence): pure, over the two sides' samples so far."""
    evidence = {"canary_n": float(canary.n), "active_n": float(active.n)}
    if canary.n < bands.min_samples or active.n < bands.min_samples:
        return WAIT, f"{canary.n} canary / {active.n} active samples (need {bands.min_samples} each)", evidence
    problems = []
    # (metric, canary values, active values, +1 when higher is worse / -1 when lower is worse, band, label)
    checks = (("grounding", canary.grounding, active.grounding, -1, bands.max_grounding_drop, "mean CLIPScore"),
              ("repetition", canary.repetition, active.repetition, 1, bands.max_repetition_rise,
               "repeated 4-gram rate"))
    for name, canary_values, active_values, worse_sign, band, label in checks:
        c, a = _mean(canary_values), _mean(active_values)
        if c is None or a is None:
            continue
        evidence.update({f"{name}_canary": c, f"{name}_active": a, f"{name}_delta": c - a})
        worse = worse_sign * (c - a)
        if worse > band:
            problems.append(f"{label} {c:.3f} vs {a:.3f} active (worse by {worse:.3f} > {band})")
    if problems:
        return ROLLBACK, "canary regressed: " + "; ".join(problems), evidence
    if canary.n >= bands.promote_after:
        return PROMOTE, f"{canary.n} canary samples within the bands", evidence
    return WAIT, f"within the bands after {canary.n} canary samples (promote at {bands.promote_after})", evidence


@dataclass(frozen=True)
class Routing:
    canary: str = ""
    canary_share: float = 0.0
    active: str = ""


class CanaryMonitor:
    """Bus handler for Topic.METRICS_COMPUTED (its own consumer group): returns the signed lifecycle command
    of a verdict as an Output, committed with the metrics offsets."""

    def __init__(self, generator_stub, bands: Bands, signer: Signer | None,
                 reject_state: int = S.ADAPTER_STATE_CANDIDATE, refresh_s: float = 2.0,
                 rpc_timeout_s: float = 10.0) -> None:
        self.generator = generator_stub
        self.bands = bands
        self.signer = signer
        self.reject_state = reject_state
        self.refresh_s = refresh_s
        self.rpc_timeout_s = rpc_timeout_s
        self._lock = threading.Lock()
        self._routing = Routing()
        self._read_at = -math.inf
        self._canary = ""                 # the canary the sides below belong to
        self._sides = {"canary": Side(), "active": Side()}
        self._decided: dict[str, str] = {}  # canary id -> verdict sent (until the generator shows it applied)

    def routing(self, force: bool = False) -> Routing:
        if force or time.monotonic() - self._read_at >= self.refresh_s:
            try:
                listing = self.generator.ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=self.rpc_timeout_s)
            except grpc.RpcError as exc:   # transient: the bus retries this event
                raise Unavailable(f"generator ListAdapters: {exc.code().name}") from exc
            canary = next((a for a in listing.adapters if a.state == S.ADAPTER_STATE_CANARY), None)
            self._routing = Routing(canary.adapter_id if canary else "", canary.canary_share if canary else 0.0,
                                    listing.active_adapter_id)
            self._read_at = time.monotonic()
        return self._routing

    def handle(self, env: Envelope) -> list[Output]:
        m = env.message
        if not isinstance(m, events_pb2.MetricsComputed):
            raise InvalidArgument(f"expected MetricsComputed, got {type(m).__name__}")
        if GATE_LABEL in m.labels:
            return []
        with self._lock:
            r = self.routing()
            if not r.canary:
                return []
            if r.canary != self._canary:   # a new canary: fresh evidence on both sides
                self._canary, self._sides = r.canary, {"canary": Side(), "active": Side()}
                log.info("canary watched", extra={"adapter_id": r.canary, "canary_share": r.canary_share,
                                                  "active": r.active or "base"})
            if r.canary in self._decided:
                return []
            side = "canary" if m.adapter_id == r.canary else "active" if m.adapter_id == r.active else ""
            if not side:
                return []
            self._sides[side].add(m)
            prom.CANARY_SAMPLES.labels(side).set(self._sides[side].n)
            step, reason, evidence = verdict(self._sides["canary"], self._sides["active"], self.bands)
            if step == WAIT:
                return []
            self._decided[r.canary] = step
        return [Output(Topic.ADAPTER_LIFECYCLE, self._command(r, step, reason, evidence))]

    def _command(self, r: Routing, step: str, reason: str,
                 evidence: dict[str, float]) -> events_pb2.AdapterLifecycleChanged:
        now = Timestamp()
        now.GetCurrentTime()
        state = S.ADAPTER_STATE_ACTIVE if step == PROMOTE else self.reject_state
        cmd = events_pb2.AdapterLifecycleChanged(
            adapter_id=r.canary, previous_state=S.ADAPTER_STATE_CANARY, state=state,
            reason=f"canary {step}: {reason}", evidence=evidence, actor="gate", changed_at=now)
        if self.signer is not None:
            sign_command(cmd, self.signer)
        prom.CANARY_STEPS.labels(step).inc()
        for name, value in evidence.items():
            if name.endswith("_delta"):
                prom.CANARY_DELTA.labels(name.removesuffix("_delta")).set(value)
        (log.warning if step == ROLLBACK else log.info)(
            "canary verdict", extra={"adapter_id": r.canary, "step": step, "reason": reason,
                                     "active": r.active or "base", **evidence})
        return cmd
