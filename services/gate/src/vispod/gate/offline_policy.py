"""The offline promotion policy: promote a candidate on measured evidence, without an LLM judge.

Inputs are story-level bootstrap intervals (bootstrap.py) of the differences candidate − baseline, where the
baseline is the currently active model (the small base model before any adapter was promoted). Over the
policy's metrics — format validity rate, caption coverage and distinct-2 by default, all "higher is better":

- *improved*: the 95% interval's lower bound is above 0;
- *not worse*: the 95% interval's upper bound is at least 0, i.e. the data do not show the candidate worse at
  the 95% level (an improved metric is also not worse);
- *worse*: the upper bound is below 0; *unmeasured*: no interval (no defined value on a side) — never counts as
  improved or not worse.

Promote iff at least `min_improved` (2) of the metrics improved, every other one is not worse, and grounding
(caption coverage) is not worse. With the default metrics the grounding clause is implied by the others; it is
kept explicit so that it holds whatever metrics a configuration names.

`decide_offline` returns an OfflineDecision; `.as_gate_decision()` is the gate's own Decision (decision.py), so
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
        return (f"promote iff at least {self.min_improved} of {', '.join(self.metrics)} improved (95% CI of "
                f"candidate − baseline above 0), the rest not worse (CI upper bound ≥ 0), and {self.grounding} "
                "not worse; stories are the bootstrap unit")


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
