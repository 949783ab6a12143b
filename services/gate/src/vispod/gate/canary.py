"""The live half of promotion: a candidate the gate passed serves a canary share; live traffic decides the rest.

Evidence the gate trusts, never a `MetricsComputed` from the bus (anyone who can write that topic could forge one):
- which adapter is canary or active comes from the generator itself (ListAdapters over gRPC);
- each live `DialogueGenerated` of either side counts for the error and latency guards, and the dialogues the
  test needs are scored by the gate's own call to the metrics service (`MetricsService.Score`): the numbers are
  computed for the gate from the dialogue's text and photos;
- the gate's own evaluation traffic (label `vispod.gate`) is never evidence.
The decision (vispod.gate.sequential): canary and active dialogues are paired as they arrive; per metric (repeated
4-gram rate; CLIPScore unless its weights are random) a Wald sign test stops at "worse" (roll back) or "no worse";
α (false rollback) is split over the metrics, β (false promotion) holds for each. Guards roll back at once:
the canary's failure rate above the active's by more than `max_error_rise`, or its mean latency above
`max_latency_ratio` times the active's (each after `min_samples` canary dialogues). A canary undecided after
`max_duration_s` is rolled back, by the next dialogue or by the periodic tick when there is no traffic.

The test's state is a `CanaryProgress` on the compacted `vispod.gate.canary` topic (keyed by the canary id),
written in the same Kafka transaction as the dialogue offsets it has counted: a gate killed at any moment
restarts from exactly the evidence its committed offsets account for, and decides.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from vispod.common.bus import EventPublisher, Output
from vispod.common.errors import InvalidArgument, Unavailable
from vispod.common.events import Envelope
from vispod.common.lifecycle_signing import sign_command
from vispod.common.signing import Signer
from vispod.common.topics import Topic
from vispod.gate import prom
from vispod.gate.sequential import NO_WORSE, WORSE, SignTest
from vispod.v1 import common_pb2, events_pb2, generator_pb2, metrics_pb2

log = logging.getLogger(__name__)

S = events_pb2.AdapterState
WAIT, ROLLBACK, PROMOTE = "wait", "rollback", "promote"
GATE_LABEL = "vispod.gate"   # the gate's own evaluation traffic: never canary evidence
# Metric -> +1 when higher is better, -1 when lower is better.
METRICS = {"repetition": -1, "grounding": 1}
KEEP_ACTIVE_SCORED = 4       # active dialogues scored ahead of the canary ones they will be paired with


@dataclass(frozen=True)
class CanaryPolicy:
    test: SignTest = field(default_factory=SignTest)
    min_samples: int = 20              # canary dialogues before a guard or a promotion may fire
    max_error_rise: float = 0.05       # canary failure rate minus active failure rate
    max_latency_ratio: float = 1.5     # canary mean latency / active mean latency
    max_duration_s: float = 3600.0     # undecided after this long: rolled back
    max_waiting: int = 32              # scored dialogues waiting for a partner, per side


def scores_of(m: events_pb2.MetricsComputed) -> dict[str, float]:
    """The metrics the test compares; a CLIPScore from random weights is noise, never evidence."""
    out = {}
    if m.HasField("style") and math.isfinite(m.style.repeated_4gram_rate):
        out["repetition"] = m.style.repeated_4gram_rate
    if m.HasField("grounding") and not m.grounding.random_weights and math.isfinite(m.grounding.clipscore):
        out["grounding"] = m.grounding.clipscore
    return out


def new_progress(canary: str, active: str, now_s: float) -> events_pb2.CanaryProgress:
    started = Timestamp()
    started.FromNanoseconds(int(now_s * 1e9))
    return events_pb2.CanaryProgress(canary_adapter_id=canary, active_adapter_id=active, started_at=started)


def sides(p: events_pb2.CanaryProgress, side: str) -> tuple[events_pb2.CanarySide, events_pb2.CanarySide]:
    """(this side, the other side) of the test."""
    return (p.canary, p.active) if side == "canary" else (p.active, p.canary)


def count(p: events_pb2.CanaryProgress, side: str, ok: bool, latency_s: float) -> None:
    """One live dialogue of `side` (canary | active), for the guards."""
    s = sides(p, side)[0]
    s.n += 1
    s.failed += 0 if ok else 1
    s.latency_sum_s += latency_s if ok else 0.0


def wants_scores(p: events_pb2.CanaryProgress, side: str, policy: CanaryPolicy) -> bool:
    """Every canary dialogue is scored; an active one only while some canary one waits or few active ones do."""
    if side == "canary":
        return len(p.canary.waiting) < policy.max_waiting or bool(p.active.waiting)
    return bool(p.canary.waiting) or len(p.active.waiting) < min(KEEP_ACTIVE_SCORED, policy.max_waiting)


def pair(p: events_pb2.CanaryProgress, side: str, scores: dict[str, float], policy: CanaryPolicy) -> None:
    """Pairs a scored dialogue with the oldest waiting one of the other side (or lets it wait) and moves each
    metric's sign test by the pair's sign."""
    mine, theirs = (s.waiting for s in sides(p, side))
    if not theirs:
        if len(mine) < policy.max_waiting:
            mine.add(scores=scores)
        return
    other = dict(theirs[0].scores)
    del theirs[0]
    canary, active = (scores, other) if side == "canary" else (other, scores)
    test = policy.test.split(len(METRICS))
    for metric, better in METRICS.items():
        if metric not in canary or metric not in active or canary[metric] == active[metric]:
            continue  # not measured on both, or a tie: no sign
        worse = better * (canary[metric] - active[metric]) < 0
        p.log_likelihood_ratio[metric] = p.log_likelihood_ratio.get(metric, 0.0) + test.step(worse)
        p.pairs[metric] = p.pairs.get(metric, 0) + 1


def latency_mean(s: events_pb2.CanarySide) -> float | None:
    """Mean latency of the side's dialogues that succeeded."""
    ok = s.n - s.failed
    return s.latency_sum_s / ok if ok else None


def evidence_of(p: events_pb2.CanaryProgress, now_s: float) -> dict[str, float]:
    ev = {"elapsed_s": round(now_s - p.started_at.ToNanoseconds() / 1e9, 3)}
    for name, s in (("canary", p.canary), ("active", p.active)):
        ev[f"{name}_n"], ev[f"{name}_failed"] = float(s.n), float(s.failed)
        if (mean := latency_mean(s)) is not None:
            ev[f"{name}_latency_mean_s"] = mean
    for metric in METRICS:
        if metric in p.pairs:
            ev[f"{metric}_llr"], ev[f"{metric}_pairs"] = p.log_likelihood_ratio[metric], float(p.pairs[metric])
    return ev


def verdict(p: events_pb2.CanaryProgress, policy: CanaryPolicy, now_s: float) -> tuple[str, str]:
    """(wait | rollback | promote, reason): guards first, then the sign tests, then the time limit."""
    test = policy.test.split(len(METRICS))
    if p.canary.n >= policy.min_samples and p.active.n:
        rise = p.canary.failed / p.canary.n - p.active.failed / p.active.n
        if rise > policy.max_error_rise:
            return ROLLBACK, (f"error guard: canary failure rate above the active's by {rise:.3f} "
                              f"(> {policy.max_error_rise})")
        c, a = latency_mean(p.canary), latency_mean(p.active)
        if c is not None and a and c > policy.max_latency_ratio * a:
            return ROLLBACK, f"latency guard: canary mean {c:.2f} s vs active {a:.2f} s (> x{policy.max_latency_ratio})"
    states = {m: test.state(p.log_likelihood_ratio[m]) for m in METRICS if m in p.pairs}
    worse = sorted(m for m, s in states.items() if s == WORSE)
    if worse:
        return ROLLBACK, (f"sign test: canary worse on {', '.join(worse)} (alpha {policy.test.alpha} over "
                          f"{len(METRICS)} metrics, p1 {policy.test.p1})")
    if states and all(s == NO_WORSE for s in states.values()) and p.canary.n >= policy.min_samples:
        pairs = ", ".join(f"{m} {p.pairs[m]} pairs" for m in sorted(states))
        return PROMOTE, f"sign test: canary no worse ({pairs}; beta {policy.test.beta}, p1 {policy.test.p1})"
    elapsed = now_s - p.started_at.ToNanoseconds() / 1e9
    if elapsed >= policy.max_duration_s:
        return ROLLBACK, f"time limit: no decision after {elapsed:.0f} s (limit {policy.max_duration_s:g} s)"
    return WAIT, f"{p.canary.n} canary / {p.active.n} active dialogues"


@dataclass(frozen=True)
class Routing:
    canary: str = ""
    canary_share: float = 0.0
    active: str = ""


class CanaryMonitor:
    """Bus handler for Topic.DIALOGUE_GENERATED (its own consumer group) and, replayed at start, for
    Topic.GATE_CANARY (`restore`); `tick` enforces the time limit when no traffic arrives."""

    def __init__(self, generator_stub, metrics_stub, policy: CanaryPolicy, signer: Signer | None,
                 reject_state: int = S.ADAPTER_STATE_CANDIDATE, refresh_s: float = 2.0, rpc_timeout_s: float = 10.0,
                 publisher: EventPublisher | None = None, clock: Callable[[], float] = time.time,
                 ready: threading.Event | None = None) -> None:
        self.generator, self.metrics = generator_stub, metrics_stub
        self.policy = policy
        self.signer = signer
        self.reject_state = reject_state
        self.refresh_s, self.rpc_timeout_s = refresh_s, rpc_timeout_s
        self.publisher = publisher
        self.clock = clock
        self.ready = ready               # set once the saved progress is replayed (None: nothing to wait for)
        self._lock = threading.Lock()
        self._routing = Routing()
        self._read_at = -math.inf
        self._progress: dict[str, events_pb2.CanaryProgress] = {}   # canary id -> its test
        self._live = False

    # --- inputs ---------------------------------------------------------------------------------------------
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

    def restore(self, env: Envelope) -> list[Output]:
        """Replayed saved progress (compacted topic), read before any dialogue is counted; after that the monitor
        is the topic's only writer and its own memory is ahead of what it reads back."""
        p = env.message
        if not isinstance(p, events_pb2.CanaryProgress):
            raise InvalidArgument(f"expected CanaryProgress, got {type(p).__name__}")
        with self._lock:
            if not self._live and p.canary_adapter_id:
                self._progress[p.canary_adapter_id] = p
        return []

    def _score(self, dialogue: events_pb2.DialogueGenerated) -> dict[str, float]:
        try:
            scored = self.metrics.Score(metrics_pb2.ScoreRequest(generated=dialogue), timeout=self.rpc_timeout_s)
        except grpc.RpcError as exc:   # transient: the bus retries the dialogue (nothing was counted yet)
            raise Unavailable(f"metrics Score: {exc.code().name}") from exc
        return scores_of(scored.result)

    def _current(self, r: Routing) -> events_pb2.CanaryProgress:
        p = self._progress.get(r.canary)
        if p is None or p.active_adapter_id != r.active:   # a new canary, or a new active under it: start afresh
            p = self._progress[r.canary] = new_progress(r.canary, r.active, self.clock())
            log.info("canary watched", extra={"adapter_id": r.canary, "canary_share": r.canary_share,
                                              "active": r.active or "base"})
        return p

    def handle(self, env: Envelope) -> list[Output]:
        d = env.message
        if not isinstance(d, events_pb2.DialogueGenerated):
            raise InvalidArgument(f"expected DialogueGenerated, got {type(d).__name__}")
        if GATE_LABEL in d.labels:
            return []
        if self.ready is not None and not self.ready.wait(30):
            raise RuntimeError("the saved canary progress is still being read")
        self._live = True
        r = self.routing()
        if not r.canary:
            return []
        side = "canary" if d.adapter_id == r.canary else "active" if d.adapter_id == r.active else ""
        if not side:
            return []
        with self._lock:
            p = self._current(r)
            if p.decision:
                return []   # decided; the generator has not applied it yet
            ok = d.status == common_pb2.STATUS_OK
            scores = self._score(d) if ok and wants_scores(p, side, self.policy) else None
            count(p, side, ok, d.latency_seconds)
            if scores is not None:
                pair(p, side, scores, self.policy)
            return self._outputs(p, r)

    def tick(self, _owned: frozenset[int] = frozenset()) -> None:
        """Periodic (the consumer's thread, between batches): starts the clock of a canary that gets no traffic,
        and rolls back one past the time limit."""
        if self.publisher is None or (self.ready is not None and not self.ready.is_set()):
            return
        self._live = True
        r = self.routing(force=True)
        if not r.canary:
            return
        with self._lock:
            known = r.canary in self._progress
            p = self._current(r)
            if p.decision:
                return
            outputs = self._outputs(p, r)
            if not known or len(outputs) > 1:
                for out in outputs:
                    self.publisher.publish(out.topic, out.message, key=out.key)

    # --- outputs --------------------------------------------------------------------------------------------
    def _outputs(self, p: events_pb2.CanaryProgress, r: Routing) -> list[Output]:
        now = self.clock()
        step, reason = verdict(p, self.policy, now)
        prom.CANARY_SAMPLES.labels("canary").set(p.canary.n)
        prom.CANARY_SAMPLES.labels("active").set(p.active.n)
        for metric, llr in p.log_likelihood_ratio.items():
            prom.CANARY_LLR.labels(metric).set(llr)
        saved = Output(Topic.GATE_CANARY, p, key=p.canary_adapter_id.encode())
        if step == WAIT:
            return [saved]
        p.decision, p.reason = step, reason
        return [saved, Output(Topic.ADAPTER_LIFECYCLE, self._command(r, step, reason, evidence_of(p, now)))]

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
        (log.warning if step == ROLLBACK else log.info)(
            "canary verdict", extra={"adapter_id": r.canary, "step": step, "reason": reason,
                                     "active": r.active or "base", **evidence})
        return cmd
