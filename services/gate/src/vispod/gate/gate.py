"""Evaluation-gated promotion: one published adapter in, one decision (and its lifecycle event) out.

How a decision takes effect — the primary mechanism is the event:
- The AdapterLifecycleChanged event (actor "gate", Ed25519-signed with the gate's key) is returned to the bus,
  which commits it atomically with the consumed AdapterPublished offset (exactly once). Every generator replica
  reads the compacted lifecycle topic whole and obeys signed commands, including replicas started later.
- A promotion goes to CANARY first (settings.canary_share, 0 for straight to ACTIVE); the canary monitor
  (vispod.gate.canary) finishes it, or rolls it back, on live metrics.
- Secondary: GeneratorService.UpdateAdapter on the configured generator address, so the decision also takes
  effect on a generator that does not consume lifecycle events, and at once. Its failure is recorded, never
  fatal: the event still carries the decision.
Both are idempotent: the generator treats a move to the state an adapter is already in as a no-op, and the gate
re-emits the recorded decision (same derived event id) instead of evaluating again on redelivery.

A failed evaluation (service down, timeout, the generator never registering the candidate) is a decision too:
no promotion, the reason recorded. The handler never raises for it, so there is no retry/crash loop.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from vispod.common.bus import Output
from vispod.common.errors import InvalidArgument
from vispod.common.events import Envelope
from vispod.common.lifecycle_signing import sign_command
from vispod.common.metric_fields import flat_values
from vispod.common.signing import Signer
from vispod.common.statistics import finite
from vispod.common.topics import Topic
from vispod.gate import prom
from vispod.gate.clients import Clients, outcome_for_a
from vispod.gate.decision import (
    INVALID,
    LOSS,
    REJECT,
    Decision,
    GateCriteria,
    decide,
    failed_evaluation,
)
from vispod.gate.decisions_log import DecisionsLog
from vispod.gate.decisions_report import render_decisions_report
from vispod.gate.evalset import Story
from vispod.gate.policy import comparisons_of, load_rule, non_inferior_to
from vispod.gate.settings import GateSettings
from vispod.gate.story_calls import GenerationFailed, generate, story_event
from vispod.v1 import events_pb2, generator_pb2, judge_pb2, metrics_pb2

log = logging.getLogger(__name__)

BASE_MODEL = "base"  # GenerateRequest adapter value meaning the base model (generator contract)
Action = generator_pb2.UpdateAdapterRequest.Action
S = events_pb2.AdapterState


class EvaluationFailed(RuntimeError):
    """The evaluation could not complete; the message is the recorded reason."""


@dataclass
class Evidence:
    baseline: str = ""
    outcomes: list[list[str]] = field(default_factory=list)  # per story: one verdict per judge
    grounding_candidate: list[float] = field(default_factory=list)
    grounding_baseline: list[float] = field(default_factory=list)
    # "candidate" | "baseline" -> story id -> every metric the metrics service computed (`section.field`)
    metrics: dict[str, dict[str, dict[str, float | None]]] = field(
        default_factory=lambda: {"candidate": {}, "baseline": {}})
    stories: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Deadline:
    def __init__(self, seconds: float, rpc_timeout: float) -> None:
        self.end = time.monotonic() + seconds
        self.seconds = seconds
        self.rpc_timeout = rpc_timeout

    def timeout(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise EvaluationFailed(f"evaluation exceeded its budget of {self.seconds:g} s")
        return min(self.rpc_timeout, left)


def _missing_judge_evidence(judged: Decision, criterion: str) -> str:
    """What the judged rule lacked to decide ("" when it had its evidence): a valid verdict, or grounding."""
    if not judged.evidence.get("n"):
        return f"the judge gave no valid {criterion} verdict"
    if "grounding_delta" not in judged.evidence:
        return "grounding was not measured"
    return ""


def _rpc(what: str, exc: grpc.RpcError) -> EvaluationFailed:
    return EvaluationFailed(f"{what}: {exc.code().name}: {exc.details()}")


class Gate:
    def __init__(self, settings: GateSettings, clients: Clients, stories: Sequence[Story],
                 decisions: DecisionsLog | None = None) -> None:
        self.settings = settings
        self.clients = clients
        self.stories = [s for s in stories if s.images]
        if not self.stories:
            raise ValueError("the gate's evaluation set has no story with photos")
        self.log = decisions or DecisionsLog(settings.decisions_path())
        self.criteria = GateCriteria(settings.criterion, settings.tie_policy, settings.min_win_rate_lower,
                                     settings.max_grounding_drop)
        # the plan's rule (vispod.gate.policy, the one the mini-paper decides by), when the gate has a plan
        self.rule = load_rule(settings.plan_file) if settings.plan_file else None
        self.plan_sha256 = hashlib.sha256(settings.plan_file.read_bytes()).hexdigest() if settings.plan_file else ""
        self.signer = Signer.from_file(settings.signing_key_file, "gate") if settings.signing_key_file else None
        if self.signer is None:
            log.warning("no VISPOD_GATE_SIGNING_KEY_FILE: lifecycle events go out unsigned and generators will "
                        "not obey them (only the UpdateAdapter call applies a decision)")

    # --- bus handler --------------------------------------------------------------------------
    def handle(self, env: Envelope) -> list[Output]:
        msg = env.message
        if not isinstance(msg, events_pb2.AdapterPublished):
            raise InvalidArgument(f"expected AdapterPublished, got {type(msg).__name__}")
        if "@" not in msg.adapter_id or msg.adapter_id.startswith("@") or msg.adapter_id.endswith("@"):
            raise InvalidArgument(f"adapter_id must be name@version, got {msg.adapter_id!r}")
        previous = self.log.previous(msg.adapter_id, env.id)
        if previous is not None and previous.get("event_id") == env.id:
            # Redelivery: our transaction did not commit, so its event was never seen; emit the same one again
            # (the gRPC call was made the first time and is in the log).
            log.info("redelivered; re-emitting the recorded decision", extra={"adapter_id": msg.adapter_id})
            return [Output(Topic.ADAPTER_LIFECYCLE, self._event_from_entry(previous))]
        if previous is not None:
            # The same immutable version published again: decided already, and re-emitting an old decision could
            # undo a newer one (e.g. re-promote a replaced adapter).
            log.warning("adapter already decided; ignoring the repeated publication",
                        extra={"adapter_id": msg.adapter_id, "decision": previous["decision"]})
            return []
        entry = self.evaluate_and_record(msg.adapter_id, env.id)
        return [Output(Topic.ADAPTER_LIFECYCLE, self._event_from_entry(entry))]

    def evaluate_and_record(self, adapter_id: str, event_id: str = "") -> dict:
        started = time.monotonic()
        evidence = Evidence()
        current = ""
        decided_by = "judge and plan" if self.rule is not None else "judge"
        try:
            current = self._wait_registered(adapter_id)
            evidence = self._evaluate(adapter_id, _Deadline(self.settings.evaluation_timeout_s,
                                                            self.settings.rpc_timeout_s))
            judged = decide(evidence.outcomes, evidence.grounding_candidate, evidence.grounding_baseline,
                            self.criteria)
            missing = _missing_judge_evidence(judged, self.criteria.criterion)
            if missing and self.settings.without_judge_evidence == "plan":
                decision, decided_by = self._plan_alone(evidence, adapter_id, missing), \
                    f"plan (judge left out: {missing})"
            else:
                decision = self._with_plan(judged, evidence, adapter_id)
        except EvaluationFailed as exc:
            decision = failed_evaluation(str(exc))
        except Exception as exc:  # a bug or a surprise must not become a retry loop: record it, do not promote
            log.exception("gate evaluation crashed", extra={"adapter_id": adapter_id})
            decision = failed_evaluation(f"{type(exc).__name__}: {exc}")
        seconds = time.monotonic() - started
        current = self._state_of(adapter_id) or current  # it may have moved (e.g. to canary) while we evaluated
        target = self._target_state(decision, current)
        applied = self._apply(adapter_id, decision.promote, current, decision.reason)
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"), "event_id": event_id, "adapter_id": adapter_id,
            "baseline": evidence.baseline, "decision": decision.decision, "failed": decision.failed,
            "reason": decision.reason, "decided_by": decided_by, "criterion": self.criteria.criterion,
            "tie_policy": self.criteria.tie_policy,
            "min_win_rate_lower": self.criteria.min_win_rate_lower,
            "max_grounding_drop": self.criteria.max_grounding_drop, "plan_sha256": self.plan_sha256,
            "evidence": decision.evidence,
            "previous_state": current, "applied_state": target, "applied_via_grpc": applied,
            "seconds": round(seconds, 3), "stories": evidence.stories, "notes": evidence.notes,
        }
        if target == "CANARY":
            entry["canary_share"] = self.settings.canary_share
        self.log.append(entry)
        entry = finite(entry)  # what was logged is what is emitted
        prom.DECISIONS.labels(decision.decision).inc()
        if target == "CANARY":
            prom.CANARY_STEPS.labels("canary").inc()
        prom.EVALUATION_SECONDS.observe(seconds)
        if decision.failed:
            prom.FAILED_EVALUATIONS.inc()
        log.info("gate decision", extra={"adapter_id": adapter_id, "decision": decision.decision,
                                         "reason": decision.reason, "seconds": round(seconds, 1)})
        self.render_report()
        return entry

    def _with_plan(self, decision: Decision, ev: Evidence, candidate: str) -> Decision:
        """The judged decision, and the plan's guard on the metrics service's numbers: every metric of the plan's
        rule non-inferior to the active model (policy.non_inferior_to). A promotion needs both."""
        if self.rule is None:
            return decision
        guard = non_inferior_to(comparisons_of(ev.metrics["candidate"], ev.metrics["baseline"], self.rule),
                                self.rule, candidate, ev.baseline)
        evidence = {**decision.evidence, **{f"plan_{k}": v for k, v in guard.evidence.items()}}
        if decision.promote and not guard.promote:
            return Decision(REJECT, f"{decision.reason}; but the plan's rule: {guard.reasons[0]}", evidence)
        return Decision(decision.decision, f"{decision.reason}; plan: {guard.reasons[0]}", evidence,
                        decision.failed)

    def _plan_alone(self, ev: Evidence, candidate: str, missing: str) -> Decision:
        """The judge left out (its rule lacks evidence): the plan's guard alone, every metric of the plan's rule at
        least non-inferior to the active model on the metrics service's numbers; it rejects as readily as before."""
        if self.rule is None:  # the settings refuse this; a Gate built around them must not promote by accident
            raise EvaluationFailed("no plan to decide without the judge")
        guard = non_inferior_to(comparisons_of(ev.metrics["candidate"], ev.metrics["baseline"], self.rule),
                                self.rule, candidate, ev.baseline)
        evidence = {"judge_left_out": 1.0, **{f"plan_{k}": v for k, v in guard.evidence.items()}}
        return Decision(guard.decision, f"{missing}: the judge is left out and the plan's rule decides on the "
                                        f"metrics service's numbers (stories: {len(ev.metrics['candidate'])}): "
                                        + "; ".join(guard.reasons), evidence)

    def render_report(self) -> None:
        try:
            render_decisions_report(self.settings.report_file(), self.log.entries(), self.criteria.min_win_rate_lower)
        except Exception:  # the report is a view; the log is the record
            log.exception("could not render the gate report")

    # --- evaluation ---------------------------------------------------------------------------
    def _adapters(self, timeout: float) -> generator_pb2.ListAdaptersResponse:
        try:
            return self.clients.generator.ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            raise _rpc("generator ListAdapters", exc) from exc

    def _state_of(self, adapter_id: str) -> str:
        """The adapter's state at the generator ("" when unknown or unreachable)."""
        try:
            listing = self._adapters(min(10.0, self.settings.rpc_timeout_s))
        except EvaluationFailed:
            return ""
        for info in listing.adapters:
            if info.adapter_id == adapter_id:
                return S.Name(info.state).removeprefix("ADAPTER_STATE_")
        return ""

    def _wait_registered(self, adapter_id: str) -> str:
        """The generator consumes the same AdapterPublished: wait until it has verified and registered it, and its
        engine holds it (vLLM's adapter-sync loaded it, every TGI replica restarted with it): a candidate evaluated
        before that would score all losses. A generator that is briefly unreachable is waited for too, within the
        same budget."""
        deadline = time.monotonic() + self.settings.candidate_wait_s
        while True:
            state, servable, problem = "", False, ""
            try:
                listing = self._adapters(min(10.0, self.settings.rpc_timeout_s))
            except EvaluationFailed as exc:
                problem = f": {exc}"
            else:
                for info in listing.adapters:
                    if info.adapter_id == adapter_id:
                        state, servable = S.Name(info.state).removeprefix("ADAPTER_STATE_"), info.servable
            if state == "REJECTED":
                raise EvaluationFailed(f"the generator rejected {adapter_id} (verification or an earlier decision)")
            if state and servable:
                return state
            if time.monotonic() >= deadline:
                what = "register" if not state else "have an engine that holds"
                raise EvaluationFailed(f"the generator did not {what} {adapter_id} within "
                                       f"{self.settings.candidate_wait_s:g} s{problem}")
            time.sleep(self.settings.poll_interval_s)

    def _evaluate(self, candidate: str, deadline: _Deadline) -> Evidence:
        listing = self._adapters(deadline.timeout())
        baseline = listing.active_adapter_id or BASE_MODEL
        if baseline == candidate:
            raise EvaluationFailed(f"{candidate} is already the active adapter: nothing to compare it with")
        ev = Evidence(baseline=baseline)
        s = self.settings
        for story in self.stories:
            row: dict = {"story": story.story_id}
            try:
                cand = generate(self.clients, story, candidate, speakers=s.speakers, target_words=s.target_words,
                                seed=s.seed, timeout=deadline.timeout(), labels={"vispod.gate": candidate})
            except grpc.RpcError as exc:
                raise _rpc(f"generating story {story.story_id} with {candidate}", exc) from exc
            except GenerationFailed as exc:  # the candidate produced no usable dialogue: that is a loss
                ev.outcomes.append([LOSS])
                row["outcome"] = "candidate failed to generate"
                ev.notes.append(str(exc))
                ev.stories.append(row)
                continue
            try:
                base = generate(self.clients, story, baseline,
                                speakers=s.speakers, target_words=s.target_words, seed=s.seed,
                                timeout=deadline.timeout(), labels={"vispod.gate": candidate})
            except grpc.RpcError as exc:
                raise _rpc(f"generating story {story.story_id} with {baseline}", exc) from exc
            except GenerationFailed as exc:
                row["outcome"] = "baseline failed to generate: story skipped"
                ev.notes.append(str(exc))
                ev.stories.append(row)
                continue
            self._score(story, cand, base, ev, row, deadline)
            self._judge(story, cand, base, candidate, baseline, ev, row, deadline)
            ev.stories.append(row)
        return ev

    def _score(self, story: Story, cand: events_pb2.DialogueGenerated, base: events_pb2.DialogueGenerated,
               ev: Evidence, row: dict, deadline: _Deadline) -> None:
        scores = []
        for which, result in (("candidate", cand), ("baseline", base)):
            try:
                scored = self.clients.metrics.Score(
                    metrics_pb2.ScoreRequest(generated=story_event(story, result.system, result.dialogue)),
                    timeout=deadline.timeout()).result
            except grpc.RpcError as exc:
                raise _rpc(f"scoring the {which} on story {story.story_id}", exc) from exc
            ev.metrics[which][story.story_id] = flat_values(scored)
            score = scored.grounding.clipscore if scored.HasField("grounding") else None
            scores.append(score if score is not None and math.isfinite(score) else None)  # NaN is not a score
            row[f"{which}_words"] = scored.style.words
            if scored.HasField("grounding") and scored.grounding.random_weights:
                note = "grounding from RANDOM CLIP weights"
                if note not in ev.notes:
                    ev.notes.append(note)
        row["clipscore_candidate"], row["clipscore_baseline"] = scores
        if None not in scores:
            ev.grounding_candidate.append(scores[0])
            ev.grounding_baseline.append(scores[1])

    def _judge(self, story: Story, cand: events_pb2.DialogueGenerated, base: events_pb2.DialogueGenerated,
               candidate: str, baseline: str, ev: Evidence, row: dict, deadline: _Deadline) -> None:
        request = judge_pb2.CompareRequest(
            a=story_event(story, candidate, cand.dialogue), b=story_event(story, baseline, base.dialogue),
            criteria=[self.criteria.criterion], judges=self.settings.judges)
        try:
            judgement = self.clients.judge.Compare(request, timeout=deadline.timeout()).result
        except grpc.RpcError as exc:
            raise _rpc(f"judging story {story.story_id}", exc) from exc
        outcomes = [outcome_for_a(v.outcome) for v in judgement.verdicts if v.criterion == self.criteria.criterion]
        if not outcomes and self.settings.without_judge_evidence == "reject":
            raise EvaluationFailed(f"the judge returned no {self.criteria.criterion} verdict for story "
                                   f"{story.story_id}")
        outcomes = outcomes or [INVALID]  # no verdict at all: no valid one (the plan may decide without the judge)
        ev.outcomes.append(outcomes)
        row["outcomes"] = outcomes

    # --- applying -----------------------------------------------------------------------------
    def _target_state(self, decision: Decision, current: str) -> str:
        if decision.promote:
            # Canary first (the live metrics finish the promotion: vispod.gate.canary); never demote the active.
            return "CANARY" if self.settings.canary_share > 0 and current != "ACTIVE" else "ACTIVE"
        if current == "ACTIVE":  # never demote a serving adapter on a failed gate: keep it as it is
            return "ACTIVE"
        return "REJECTED" if self.settings.reject_action == "reject" else "CANDIDATE"

    def _apply(self, adapter_id: str, promote: bool, current: str, reason: str) -> str:
        """Secondary mechanism: UpdateAdapter. Returns what happened, for the log."""
        if not self.settings.apply_via_grpc:
            return "off"
        share = 0.0
        if promote and self.settings.canary_share > 0 and current != "ACTIVE":
            action, share = Action.ACTION_CANARY, self.settings.canary_share
        elif promote:
            action = Action.ACTION_PROMOTE
        elif self.settings.reject_action == "reject" and current != "ACTIVE":
            action = Action.ACTION_REJECT
        elif current == "CANARY":
            action = Action.ACTION_ROLLBACK  # canary -> candidate
        else:
            return "nothing to change"
        request = generator_pb2.UpdateAdapterRequest(adapter_id=adapter_id, action=action, canary_share=share,
                                                     reason=f"gate: {reason}"[:500])
        try:
            info = self.clients.generator.UpdateAdapter(request, timeout=min(30.0, self.settings.rpc_timeout_s))
        except grpc.RpcError as exc:
            prom.APPLY_FAILURES.inc()
            log.warning("UpdateAdapter failed; the lifecycle event carries the decision",
                        extra={"adapter_id": adapter_id, "code": exc.code().name, "details": exc.details()})
            return f"failed: {exc.code().name}: {exc.details()}"
        return S.Name(info.state).removeprefix("ADAPTER_STATE_")

    def _event_from_entry(self, entry: dict) -> events_pb2.AdapterLifecycleChanged:
        """The lifecycle command of a logged decision, signed (Ed25519 is deterministic: a re-emitted decision is
        the same bytes)."""
        event = self._unsigned_event(entry)
        return sign_command(event, self.signer) if self.signer is not None else event

    @staticmethod
    def _unsigned_event(entry: dict) -> events_pb2.AdapterLifecycleChanged:
        changed_at = Timestamp()
        changed_at.FromDatetime(datetime.fromisoformat(entry["time"]))
        evidence = {k: float(v) for k, v in entry.get("evidence", {}).items() if v is not None}
        previous = entry.get("previous_state") or "UNSPECIFIED"
        return events_pb2.AdapterLifecycleChanged(
            adapter_id=entry["adapter_id"], previous_state=S.Value(f"ADAPTER_STATE_{previous}"),
            state=S.Value(f"ADAPTER_STATE_{entry['applied_state']}"),
            reason=f"{entry['decision']}: {entry['reason']}", evidence=evidence, actor="gate", changed_at=changed_at,
            canary_share=entry.get("canary_share", 0.0) if entry["applied_state"] == "CANARY" else 0.0)

