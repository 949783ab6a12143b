"""The promotion policy: one rule, read from a plan fixed before the run, applied to paired story-level evidence.

Used by the mini-paper (vispod.evaluation, offline) and by the live gate (gate.py, when it has a plan): whatever
path promotes, it promotes by this rule. The rule comes from the plan's `decision` block (`DecisionRule.from_plan`):

- each metric has a *role*: `superiority` (the candidate must be shown better) or `non_inferiority` (it must not
  be shown worse by more than the metric's margin δ), and a direction (`better: higher|lower`);
- evidence per metric is a PairedComparison (vispod.common.statistics) of candidate − other on the stories both
  have: the mean paired difference with its BCa interval and the exact sign test over the stories that differ;
- *superior*: the interval's lower bound above 0, the sign test's p below `alpha`, more stories better than worse,
  and at least `min_differing` stories that differ at all (five differing stories can never give p < 0.05);
- *non-inferior*: the point estimate and the lower bound both above −δ (statistics.non_inferior);
- *inferior*: neither; *unmeasured*: no story had a value on both sides — never superior, never non-inferior;
- `decide`: promote iff at least `min_superior` of the superiority metrics are superior and every metric of the
  rule is superior or non-inferior.
- `non_inferior_to`: the guard — every metric at least non-inferior to the model serving now. The live gate
  (with a plan) applies it to the candidate against the active model, on the metrics service's numbers.
- `decide_promotion`: the paper's claim as the mini-paper's question — the candidate must beat the bigger base
  model (`decide` on candidate − bigger base) and pass the guard against the model serving now.

Directions are applied before classifying: for a lower-is-better metric (hallucination rate) the difference is
negated, so "superior" always means better.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from vispod.common.statistics import PairedComparison, non_inferior, paired_comparison
from vispod.gate.decision import PROMOTE, REJECT, Decision

SUPERIORITY, NON_INFERIORITY = "superiority", "non_inferiority"
SUPERIOR, NON_INFERIOR, INFERIOR, UNMEASURED = "superior", "non-inferior", "inferior", "unmeasured"
HIGHER, LOWER = "higher", "lower"


class PlanRuleError(ValueError):
    """The plan's decision block is malformed."""


@dataclass(frozen=True)
class MetricRule:
    metric: str  # a column of the story rows, e.g. "format.valid" or "aligned_grounding.margin"
    role: str  # superiority | non_inferiority
    delta: float = 0.0  # the non-inferiority margin, in the metric's units
    better: str = HIGHER


@dataclass(frozen=True)
class DecisionRule:
    metrics: tuple[MetricRule, ...]
    min_superior: int = 1
    alpha: float = 0.05
    min_differing: int = 6
    confidence: float = 0.95

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.metric for m in self.metrics)

    @classmethod
    def from_plan(cls, block: Mapping[str, Any]) -> DecisionRule:
        """The rule of a plan's `decision` block (see vispod.evaluation's plan files)."""
        try:
            metrics = tuple(MetricRule(str(m["metric"]), str(m["role"]), float(m.get("delta", 0.0)),
                                       str(m.get("better", HIGHER))) for m in block["metrics"])
            rule = cls(metrics, int(block.get("min_superior", 1)), float(block.get("alpha", 0.05)),
                       int(block.get("min_differing", 6)), float(block.get("confidence", 0.95)))
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanRuleError(f"the plan's decision block is malformed: {exc!r}") from exc
        for m in rule.metrics:
            if m.role not in (SUPERIORITY, NON_INFERIORITY) or m.better not in (HIGHER, LOWER) or m.delta < 0:
                raise PlanRuleError(f"metric {m.metric}: role must be superiority|non_inferiority, better "
                                    f"higher|lower, delta ≥ 0 (got {m.role}, {m.better}, {m.delta})")
        superiority = sum(m.role == SUPERIORITY for m in rule.metrics)
        if not 0 < rule.min_superior <= superiority:
            raise PlanRuleError(f"min_superior {rule.min_superior} with {superiority} superiority metrics")
        if len(set(rule.names)) != len(rule.names):
            raise PlanRuleError("a metric is named twice in the decision block")
        return rule

    def describe(self) -> str:
        sup = [m.metric for m in self.metrics if m.role == SUPERIORITY]
        margins = ", ".join(f"{m.metric} (δ={m.delta:g})" for m in self.metrics)
        return (f"promote iff at least {self.min_superior} of {', '.join(sup)} is superior (paired BCa "
                f"{self.confidence:.0%} interval above 0, exact sign test p < {self.alpha:g}, ≥ {self.min_differing} "
                f"stories differing) and every metric is at least non-inferior (estimate and lower bound above "
                f"−δ): {margins}; the story is the unit")


def load_rule(plan_file: Path) -> DecisionRule:
    """The decision rule of a plan file (its `decision` block)."""
    try:
        doc = yaml.safe_load(Path(plan_file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PlanRuleError(f"cannot read plan {plan_file}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("decision"), dict):
        raise PlanRuleError(f"{plan_file}: no decision block")
    return DecisionRule.from_plan(doc["decision"])


def comparisons_of(candidate: Mapping[str, Mapping[str, float | None]],
                   other: Mapping[str, Mapping[str, float | None]], rule: DecisionRule,
                   n_resamples: int = 2000, seed: int = 0) -> dict[str, PairedComparison]:
    """Per metric of the rule, candidate − other paired by story; inputs: story id -> metric -> value."""
    return {m: paired_comparison({s: row.get(m) for s, row in candidate.items()},
                                 {s: row.get(m) for s, row in other.items()}, n_resamples=n_resamples, seed=seed,
                                 confidence=rule.confidence) for m in rule.names}


@dataclass(frozen=True)
class PolicyDecision:
    decision: str  # promote | reject
    reasons: tuple[str, ...]
    candidate: str
    baseline: str
    verdicts: dict[str, str] = field(default_factory=dict)  # metric -> superior | non-inferior | inferior | …
    evidence: dict[str, float] = field(default_factory=dict)

    @property
    def promote(self) -> bool:
        return self.decision == PROMOTE

    def as_gate_decision(self) -> Decision:
        return Decision(self.decision, "; ".join(self.reasons), dict(self.evidence))

    def as_json(self) -> dict[str, object]:
        return {"decision": self.decision, "reasons": list(self.reasons), "candidate": self.candidate,
                "baseline": self.baseline, "verdicts": dict(self.verdicts)}


def oriented(cmp: PairedComparison, better: str) -> PairedComparison:
    """The comparison with "better" pointing up (a lower-is-better metric's difference negated)."""
    if better == HIGHER or cmp.estimate is None:
        return cmp
    return replace(cmp, estimate=-cmp.estimate, lower=None if cmp.upper is None else -cmp.upper,
                   upper=None if cmp.lower is None else -cmp.lower, wins=cmp.losses, losses=cmp.wins)


def classify(cmp: PairedComparison | None, metric: MetricRule, rule: DecisionRule) -> str:
    if cmp is None or cmp.estimate is None or cmp.lower is None:
        return UNMEASURED
    c = oriented(cmp, metric.better)
    if (c.lower or 0.0) > 0 and c.sign_p < rule.alpha and c.wins > c.losses and c.differing >= rule.min_differing:
        return SUPERIOR
    return NON_INFERIOR if non_inferior(c, metric.delta) else INFERIOR


def _describe(metric: MetricRule, cmp: PairedComparison | None, verdict: str) -> str:
    if verdict == UNMEASURED or cmp is None or cmp.estimate is None:
        return f"{metric.metric}: not measured on both systems"
    # The difference as measured (its sign in the metric's units); the story counts in the metric's direction.
    towards = oriented(cmp, metric.better)
    return (f"{metric.metric} ({metric.better} is better): {cmp.estimate:+.3f} (BCa {cmp.confidence:.0%} "
            f"{cmp.lower:+.3f} to {cmp.upper:+.3f}; {towards.wins} better, {towards.losses} worse, {cmp.ties} tied of "
            f"{cmp.n} stories; sign test p={cmp.sign_p:.3g}; δ={metric.delta:g}): {verdict}")


def decide(comparisons: Mapping[str, PairedComparison], rule: DecisionRule, candidate: str = "candidate",
           baseline: str = "baseline") -> PolicyDecision:
    """Candidate against baseline under the rule; `comparisons`: metric -> candidate − baseline."""
    verdicts = {m.metric: classify(comparisons.get(m.metric), m, rule) for m in rule.metrics}
    reasons = [_describe(m, comparisons.get(m.metric), verdicts[m.metric]) for m in rule.metrics]
    evidence: dict[str, float] = {}
    for m in rule.metrics:
        cmp = comparisons.get(m.metric)
        if cmp is not None and cmp.estimate is not None:
            evidence.update({f"{m.metric}_diff": cmp.estimate, f"{m.metric}_lower": float(cmp.lower or 0.0),
                             f"{m.metric}_upper": float(cmp.upper or 0.0), f"{m.metric}_sign_p": cmp.sign_p})
    superior = [m.metric for m in rule.metrics if m.role == SUPERIORITY and verdicts[m.metric] == SUPERIOR]
    failing = [m.metric for m in rule.metrics if verdicts[m.metric] in (INFERIOR, UNMEASURED)]
    evidence["superior"] = float(len(superior))
    problems = []
    if len(superior) < rule.min_superior:
        problems.append(f"{len(superior)} superiority metric(s) shown superior, {rule.min_superior} needed")
    if failing:
        problems.append(f"inferior or unmeasured: {', '.join(failing)}")
    if problems:
        return PolicyDecision(REJECT, (f"reject {candidate} against {baseline}: " + "; ".join(problems), *reasons),
                              candidate, baseline, verdicts, evidence)
    summary = f"promote {candidate} over {baseline}: superior on {', '.join(superior)}, nothing inferior"
    return PolicyDecision(PROMOTE, (summary, *reasons), candidate, baseline, verdicts, evidence)


def non_inferior_to(comparisons: Mapping[str, PairedComparison], rule: DecisionRule, candidate: str,
                    other: str) -> PolicyDecision:
    """Promote iff the candidate is at least non-inferior to `other` on every metric of the rule (`comparisons`:
    candidate − other) — the guard against the model serving now, offline and live."""
    verdicts = {m.metric: classify(comparisons.get(m.metric), m, rule) for m in rule.metrics}
    reasons = tuple(f"against {other}: {_describe(m, comparisons.get(m.metric), verdicts[m.metric])}"
                    for m in rule.metrics)
    evidence = {f"{m}_inferior": float(v == INFERIOR) for m, v in verdicts.items()}
    regressions = [m for m, v in verdicts.items() if v in (INFERIOR, UNMEASURED)]
    if regressions:
        return PolicyDecision(REJECT, (f"inferior or unmeasured against {other}: {', '.join(regressions)}",
                                       *reasons), candidate, other, verdicts, evidence)
    return PolicyDecision(PROMOTE, (f"non-inferior to {other}", *reasons), candidate, other, verdicts, evidence)


def decide_promotion(claim: Mapping[str, PairedComparison], active: Mapping[str, PairedComparison],
                     rule: DecisionRule, candidate: str, bigger_base: str, active_name: str) -> PolicyDecision:
    """Promote iff the candidate beats `bigger_base` (`claim`: candidate − bigger base) and is non-inferior to
    the active model on every metric of the rule (`active`: candidate − active)."""
    beats = decide(claim, rule, candidate, bigger_base)
    guard = non_inferior_to(active, rule, candidate, f"the active {active_name}")
    evidence = {**beats.evidence, **{f"active_{k}": v for k, v in guard.evidence.items()}}
    problems = [r.reasons[0] for r in (beats, guard) if not r.promote]
    reasons = (*beats.reasons[1:], *guard.reasons[1:])
    if problems:
        return PolicyDecision(REJECT, (f"reject {candidate}: " + "; ".join(problems), *reasons), candidate,
                              bigger_base, beats.verdicts, evidence)
    summary = f"promote {candidate}: {beats.reasons[0].removeprefix('promote ')}; {guard.reasons[0]}"
    return PolicyDecision(PROMOTE, (summary, *reasons), candidate, bigger_base, beats.verdicts, evidence)
