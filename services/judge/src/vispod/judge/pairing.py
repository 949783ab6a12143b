"""Pairing DialogueGenerated events into JudgementCompleted events.

Which events pair (two rules, both may apply; an event matching neither is ignored):
1. Configured system pairs (settings `pairs`, e.g. [{"a": "cand@3", "b": "base"}]): the events of
   systems `a` and `b` for the same image_set_id are judged a vs b. Pair id "<a> vs <b>".
2. Labels: an event labelled `judge.pair=<run id>` and `judge.side=a|b` pairs with the event of
   the same image set, the same run id and the other side: a producer of image sets (an upstream
   evaluation run) submits each image set twice with these labels, which the generator carries onto its
   DialogueGenerated events. Nothing in vispod submits such pairs: the gate compares candidate and active
   adapters over gRPC (JudgeService.Compare). Pair id "label:<run id>".
   A `judge.pair` label without a valid `judge.side` is a bad event (DLQ).

Idempotency: one judgement per (image set, pair id). A second event for a side already held, or
any event for a pair already completed, is dropped (counted as duplicate). The one exception is
the very event that completed a pair arriving again (its commit was lost in a crash): the stored
judgement is re-emitted, not re-judged, and the bus gives it the same event id as before.

Single writer: a pair's events share a partition (keyed by image set), and only the replica that owns
that partition touches the pair: its handler, and its timeout sweep, which runs in the consuming
thread between batches over the partitions it owns. Replicas sharing the state folder never expire
or judge one another's pairs; after a crash or a rebalance the new owner picks the parked sides up.

Out of order and missing sides: the first side is parked on disk (state.PairStore) until its
partner comes. After `pair_timeout_s` the sweeper publishes a JudgementCompleted with `error` set
and no verdicts (not a DLQ entry: the event was valid, the pair is what failed), and marks the
pair done, so a side arriving later is dropped (counted as late). A side whose generation failed
(status FAILED) completes the pair at once with an error judgement, without calling the judges.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from vispod.common.bus import EventPublisher, Output
from vispod.common.errors import InvalidArgument
from vispod.common.events import Envelope, derived_id
from vispod.common.topics import Topic
from vispod.judge import metrics
from vispod.judge.judging import Comparer, dialogue_text, judgement_of, pair_images
from vispod.judge.live_win_rate import RecentWinRate
from vispod.judge.settings import JudgeSettings
from vispod.judge.state import DonePair, PairStore, PendingPair, Side
from vispod.judge.stats import INVALID
from vispod.v1 import common_pb2, events_pb2

log = logging.getLogger(__name__)
SIDES = ("a", "b")


@dataclass(frozen=True)
class Slot:
    """One pair an event takes part in, and its side."""

    key: str
    pair_id: str
    side: str


def match(event: events_pb2.DialogueGenerated, settings: JudgeSettings) -> list[Slot]:
    """The pairs this event belongs to (see the module docstring)."""
    slots = []
    for rule in settings.pairs:
        for side, system in (("a", rule.a), ("b", rule.b)):
            if event.system == system:
                pair_id = f"{rule.a} vs {rule.b}"
                slots.append(Slot(f"{event.image_set_id}\x1f{pair_id}", pair_id, side))
    run = event.labels.get(settings.pair_label, "")
    if run:
        side = event.labels.get(settings.side_label, "").lower()
        if side not in SIDES:
            raise InvalidArgument(f"label {settings.pair_label}={run!r} needs {settings.side_label}=a|b, got {side!r}")
        pair_id = f"label:{run}"
        slots.append(Slot(f"{event.image_set_id}\x1f{pair_id}", pair_id, side))
    return slots


def _now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


class PairingHandler:
    """The bus handler of the judge's consumer (vispod.dialogue.generated)."""

    def __init__(self, settings: JudgeSettings, comparer: Comparer, store: PairStore,
                 win_rate: RecentWinRate | None = None) -> None:
        self.settings = settings
        self.comparer = comparer
        self.store = store
        self.win_rate = win_rate or RecentWinRate()

    def __call__(self, env: Envelope) -> Iterable[Output]:
        event = env.message
        assert isinstance(event, events_pb2.DialogueGenerated)
        if not event.image_set_id:
            raise InvalidArgument("DialogueGenerated without image_set_id")
        if not event.system:
            raise InvalidArgument("DialogueGenerated without system")
        slots = match(event, self.settings)
        if not slots:
            metrics.PAIRS.labels("unpaired").inc()
            return []
        outputs = []
        for slot in slots:
            out = self._slot(env, event, slot)
            if out is not None:
                outputs.append(Output(Topic.JUDGEMENT_COMPLETED, out))
        metrics.PENDING.set(self.store.pending_count())
        return outputs

    def _slot(
        self, env: Envelope, event: events_pb2.DialogueGenerated, slot: Slot
    ) -> events_pb2.JudgementCompleted | None:
        with self.store.lock(slot.key):
            done = self.store.get_done(slot.key)
            if done is not None:
                if done.completing_event_id == env.id and done.output_b64:
                    log.info("re-emitting stored judgement", extra={"pair": slot.pair_id})
                    return events_pb2.JudgementCompleted.FromString(done.output())
                metrics.PAIRS.labels("late" if done.kind == "timeout" else "duplicate").inc()
                log.info("pair already completed; event dropped", extra={"pair": slot.pair_id, "kind": done.kind})
                return None
            pending = self.store.get_pending(slot.key) or PendingPair(
                key=slot.key, image_set_id=event.image_set_id, pair_id=slot.pair_id, created=time.time(),
                partition=env.partition,
            )
            held = pending.sides.get(slot.side)
            if held is not None:
                if held.event_id != env.id:
                    metrics.PAIRS.labels("duplicate").inc()
                return None
            pending.sides[slot.side] = Side(env.id, event.system, _b64(event.SerializeToString()))
            if len(pending.sides) < 2:
                self.store.put_pending(pending)  # durable before the offset is committed
                return None
            judgement, kind = self._judge(pending)
            self.store.mark_done(DonePair(slot.key, kind, time.time(), env.id, _b64(judgement.SerializeToString())))
            metrics.PAIRS.labels(kind).inc()
            return judgement

    def _judge(self, pending: PendingPair) -> tuple[events_pb2.JudgementCompleted, str]:
        a = events_pb2.DialogueGenerated.FromString(pending.sides["a"].payload())
        b = events_pb2.DialogueGenerated.FromString(pending.sides["b"].payload())
        out = judgement_of(a, b)  # a and b share the pending pair's image set
        out.labels.pop(self.settings.side_label, None)  # each side had its own: meaningless on the pair
        out.labels["judge.pair_id"] = pending.pair_id
        failed = [
            f"{e.system}: {e.error or 'generation failed'}" for e in (a, b) if e.status == common_pb2.STATUS_FAILED
        ]
        if failed:
            out.error = "generation failed: " + "; ".join(failed)
            return out, "failed_side"
        text_a, text_b = dialogue_text(a.dialogue), dialogue_text(b.dialogue)
        if not text_a.strip() or not text_b.strip():
            out.error = "empty dialogue: " + ", ".join(e.system for e, t in ((a, text_a), (b, text_b)) if not t.strip())
            return out, "failed_side"
        verdicts = self.comparer.compare(pair_images(a, b), text_a, text_b)
        out.verdicts.extend(v.to_proto() for v in verdicts)
        self.win_rate.record(pending.pair_id, verdicts)
        broken = [v for v in verdicts if v.errors]
        if broken and len(broken) == len(verdicts) and all(v.outcome == INVALID for v in verdicts):
            out.error = f"every judge call failed: {broken[0].errors[0][:300]}"
        return out, "judged"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class TimeoutSweeper:
    """Publishes an error judgement for every pair still missing a side after the timeout.

    Runs as the consumer's periodic task (EventConsumer(periodic=sweeper.sweep)), in the consuming thread,
    over the partitions that consumer owns."""

    def __init__(self, settings: JudgeSettings, store: PairStore, publisher: EventPublisher) -> None:
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self._last_prune = 0.0

    def sweep(self, owned: frozenset[int] | None = None, now: float | None = None) -> int:
        """One pass over the pairs of the `owned` partitions (all when None); returns how many timed out.
        Pairs parked before partitions were recorded (-1) are swept by whoever runs."""
        now = time.time() if now is None else now
        expired = 0
        for pending in self.store.pending():
            if owned is not None and pending.partition != -1 and pending.partition not in owned:
                continue  # another replica's pair: it alone may expire or judge it
            if now - pending.created < self.settings.pair_timeout_s:
                continue
            with self.store.lock(pending.key):
                current = self.store.get_pending(pending.key)
                if current is None or self.store.get_done(pending.key) is not None:
                    continue
                out = self._timeout_event(current)
                # Deterministic id: a crash between publish and mark_done republishes the same event.
                self.publisher.publish(
                    Topic.JUDGEMENT_COMPLETED, out, event_id=derived_id(current.key, 0, "judge-timeout")
                )
                self.store.mark_done(DonePair(current.key, "timeout", now, "", _b64(out.SerializeToString())))
            metrics.PAIRS.labels("timeout").inc()
            expired += 1
        if now - self._last_prune > 60:
            self.store.prune_done(self.settings.done_retention_s, now)
            self._last_prune = now
        metrics.PENDING.set(self.store.pending_count())
        return expired

    def _timeout_event(self, pending: PendingPair) -> events_pb2.JudgementCompleted:
        held = {side: events_pb2.DialogueGenerated.FromString(s.payload()) for side, s in pending.sides.items()}
        present = next(iter(held.values()))
        missing = [s for s in SIDES if s not in held]
        out = events_pb2.JudgementCompleted(
            image_set_id=pending.image_set_id,
            correlation_id=present.correlation_id,
            system_a=held["a"].system if "a" in held else "",
            system_b=held["b"].system if "b" in held else "",
            completed_at=_now(),
            error=(
                f"pair {pending.pair_id}: side {'/'.join(missing)} did not arrive within "
                f"{self.settings.pair_timeout_s:g} s"
            ),
        )
        out.labels.update(dict(present.labels))
        out.labels["judge.pair_id"] = pending.pair_id
        if " vs " in pending.pair_id:  # configured pair: both system names are known
            out.system_a, out.system_b = pending.pair_id.split(" vs ", 1)
        return out
