"""The offline promotion policy: promote a candidate on measured evidence, without an LLM judge.

Inputs are story-level bootstrap intervals (vispod.common.statistics) of differences candidate − other system.
Over the policy's metrics — format validity rate, caption coverage and distinct-2 by default, all "higher is better":

- *improved*: the 95% interval's lower bound is above 0;
- *not worse*: the 95% interval's upper bound is at least 0, i.e. the data do not show the candidate worse at
  the 95% level (an improved metric is also not worse);
- *worse*: the upper bound is below 0; *unmeasured*: no interval (no defined value on a side) — never counts as
  improved or not worse.

`decide_offline(differences)`: the candidate *beats* the other system iff at least `min_improved` (2) of the
metrics improved, every other one is not worse, and grounding (caption coverage) is not worse. With the default
metrics the grounding clause is implied by the others; it is kept explicit so that it holds whatever metrics a
configuration names.

`decide_promotion(claim, active)`: the gate's question for an adapter trained to make a small model do a bigger
model's job (the paper's claim): promote iff the candidate beats the bigger base model (`claim`, the rule above)
and is not worse than the model serving now (`active`: every metric not worse, none unmeasured). An adapter that
beats the bigger base but regresses what is served is rejected; so is one that only matches the active model.

Both return an OfflineDecision; `.as_gate_decision()` is the gate's own Decision (decision.py), so
the gate service can log and apply it like a judged decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vispod.common.statistics import Interval
from vispod.gate.decision import PROMOTE, REJECT, Decision

METRICS = ("format_valid_rate", "caption_coverage", "distinct_2")
GROUNDING = "caption_coverage"
IMPROVED, NOT_WORSE, WORSE, UNMEASURED = "improved", "not worse", "worse", "unmeasured"


@dataclass(frozen=True)
class OfflinePolicy:
    metrics: tuple[str, ...] = METRICS
    min_improved: int = 2
    grounding: str = GROUNDING

    def describe(self) -> str:
        return (f"promote iff the candidate beats the bigger base model — at least {self.min_improved} of "
                f"{', '.join(self.metrics)} improved (95% CI of candidate − bigger base above 0), the rest not worse "
                f"(CI upper bound ≥ 0), {self.grounding} not worse — and no metric is worse than the active model's; "
                "stories are the bootstrap unit")


DEFAULT_POLICY = OfflinePolicy()


@dataclass(frozen=True)
class OfflineDecision:
    decision: str  # promote | reject
    reasons: tuple[str, ...]
    candidate: str
    baseline: str
    verdicts: dict[str, str] = field(default_factory=dict)  # metric -> improved | not worse | worse | unmeasured
    evidence: dict[str, float] = field(default_factory=dict)

    @property
    def promote(self) -> bool:
        return self.decision == PROMOTE

    def as_gate_decision(self) -> Decision:
        return Decision(self.decision, "; ".join(self.reasons), dict(self.evidence))

    def as_json(self) -> dict[str, object]:
        return {"decision": self.decision, "reasons": list(self.reasons), "candidate": self.candidate,
                "baseline": self.baseline, "verdicts": dict(self.verdicts)}


def classify(interval: Interval | None) -> str:
    if interval is None or interval.lower is None or interval.upper is None:
        return UNMEASURED
    if interval.lower > 0:
        return IMPROVED
    return NOT_WORSE if interval.upper >= 0 else WORSE


def _describe(metric: str, interval: Interval | None, verdict: str) -> str:
    if verdict == UNMEASURED or interval is None or interval.estimate is None:
        return f"{metric}: not measured on both systems"
    return (f"{metric}: {interval.estimate:+.3f} (95% CI {interval.lower:+.3f} to {interval.upper:+.3f}, "
            f"n={interval.n} stories): {verdict}")


def decide_offline(differences: Mapping[str, Interval], candidate: str = "candidate", baseline: str = "baseline",
                   policy: OfflinePolicy = DEFAULT_POLICY) -> OfflineDecision:
    """Decide from intervals of candidate − baseline per metric (missing metrics are unmeasured)."""
    names = list(dict.fromkeys([*policy.metrics, policy.grounding]))
    verdicts = {m: classify(differences.get(m)) for m in names}
    reasons = [_describe(m, differences.get(m), verdicts[m]) for m in names]
    evidence: dict[str, float] = {}
    for m in names:
        iv = differences.get(m)
        if iv is not None and iv.estimate is not None:
            evidence.update({f"{m}_diff": iv.estimate, f"{m}_lower": float(iv.lower), f"{m}_upper": float(iv.upper)})
    improved = [m for m in policy.metrics if verdicts[m] == IMPROVED]
    failing = [m for m in policy.metrics if verdicts[m] in (WORSE, UNMEASURED)]
    evidence["improved"] = float(len(improved))
    problems = []
    if len(improved) < policy.min_improved:
        problems.append(f"{len(improved)} of {len(policy.metrics)} metrics improved, {policy.min_improved} needed")
    if failing:
        problems.append(f"worse or unmeasured: {', '.join(failing)}")
    if verdicts[policy.grounding] in (WORSE, UNMEASURED) and policy.grounding not in failing:
        problems.append(f"grounding ({policy.grounding}) is {verdicts[policy.grounding]}")
    if problems:
        summary = f"reject {candidate} against {baseline}: " + "; ".join(problems)
        return OfflineDecision(REJECT, (summary, *reasons), candidate, baseline, verdicts, evidence)
    summary = (f"promote {candidate} over {baseline}: improved on {', '.join(improved)}, nothing worse, "
               f"grounding not worse")
    return OfflineDecision(PROMOTE, (summary, *reasons), candidate, baseline, verdicts, evidence)


def decide_promotion(claim: Mapping[str, Interval], active: Mapping[str, Interval], candidate: str,
                     bigger_base: str, active_name: str, policy: OfflinePolicy = DEFAULT_POLICY) -> OfflineDecision:
    """Promote iff the candidate beats `bigger_base` (decide_offline on `claim`: candidate − bigger base) and no
    metric is worse or unmeasured against the active model (`active`: candidate − active)."""
    beats = decide_offline(claim, candidate, bigger_base, policy)
    names = list(dict.fromkeys([*policy.metrics, policy.grounding]))
    guard = {m: classify(active.get(m)) for m in names}
    regressions = [m for m in names if guard[m] in (WORSE, UNMEASURED)]
    guard_reasons = tuple(f"against the active {active_name}: {_describe(m, active.get(m), guard[m])}" for m in names)
    evidence = {**beats.evidence, **{f"active_{m}_verdict_worse": float(guard[m] == WORSE) for m in names}}
    problems = []
    if not beats.promote:
        problems.append(beats.reasons[0])
    if regressions:
        problems.append(f"worse or unmeasured against the active {active_name}: {', '.join(regressions)}")
    if problems:
        return OfflineDecision(REJECT, (f"reject {candidate}: " + "; ".join(problems), *beats.reasons[1:],
                                        *guard_reasons), candidate, bigger_base, beats.verdicts, evidence)
    summary = (f"promote {candidate}: {beats.reasons[0].removeprefix('promote ')}; nothing worse than the active "
               f"{active_name}")
    return OfflineDecision(PROMOTE, (summary, *beats.reasons[1:], *guard_reasons), candidate, bigger_base,
                           beats.verdicts, evidence)
