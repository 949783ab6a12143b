"""The one promotion policy: superiority (BCa bound, sign test, enough differing stories), non-inferiority with a
margin δ (estimate and bound), directions, the claim against the bigger base plus the guard against the active."""

from __future__ import annotations

import pytest

from vispod.common.statistics import PairedComparison, paired_comparison
from vispod.gate.decision import Decision
from vispod.gate.policy import (
    INFERIOR,
    NON_INFERIOR,
    SUPERIOR,
    UNMEASURED,
    DecisionRule,
    PlanRuleError,
    classify,
    decide,
    decide_promotion,
)

BLOCK = {"min_superior": 1, "alpha": 0.05, "min_differing": 6, "metrics": [
    {"metric": "format.valid", "role": "superiority", "delta": 0.05},
    {"metric": "aligned_grounding.margin", "role": "non_inferiority", "delta": 0.02},
    {"metric": "hallucination.rate", "role": "non_inferiority", "delta": 0.05, "better": "lower"}]}
RULE = DecisionRule.from_plan(BLOCK)


def cmp(estimate: float, lower: float, upper: float, wins: int = 10, losses: int = 2, ties: int = 8,
        p: float = 0.04) -> PairedComparison:
    return PairedComparison(estimate, lower, upper, wins + losses + ties, wins, losses, ties, p, 0.95)


def test_superiority_needs_the_bound_the_sign_test_and_enough_differing_stories() -> None:
    metric = RULE.metrics[0]
    assert classify(cmp(0.2, 0.05, 0.3), metric, RULE) == SUPERIOR
    assert classify(cmp(0.2, 0.0, 0.3), metric, RULE) == NON_INFERIOR  # a bound of exactly 0 is not above 0
    assert classify(cmp(0.2, 0.05, 0.3, p=0.0625), metric, RULE) == NON_INFERIOR  # 5 of 5 stories: p = 0.0625
    assert classify(cmp(0.2, 0.05, 0.3, wins=5, losses=0, p=0.03), metric, RULE) == NON_INFERIOR  # 5 < 6 differ
    assert classify(cmp(-0.04, -0.049, 0.02), metric, RULE) == NON_INFERIOR  # both above −δ = −0.05
    assert classify(cmp(-0.04, -0.06, 0.02), metric, RULE) == INFERIOR  # the bound below −δ
    assert classify(cmp(-0.06, -0.04, 0.02), metric, RULE) == INFERIOR  # the estimate below −δ
    assert classify(None, metric, RULE) == UNMEASURED
    assert classify(paired_comparison({}, {}), metric, RULE) == UNMEASURED


def test_a_lower_is_better_metric_is_turned_around() -> None:
    rate = RULE.metrics[2]
    assert classify(cmp(-0.2, -0.3, -0.1, wins=2, losses=10), rate, RULE) == SUPERIOR  # fewer hallucinations
    assert classify(cmp(0.04, 0.01, 0.049), rate, RULE) == NON_INFERIOR  # up to δ = 0.05 more is tolerated
    assert classify(cmp(0.04, 0.01, 0.07), rate, RULE) == INFERIOR


@pytest.mark.parametrize(
    ("fmt", "margin", "rate", "decision", "clue"),
    [
        (cmp(0.2, 0.05, 0.3), cmp(0.0, -0.01, 0.01), cmp(0.0, -0.02, 0.02), "promote", "superior on format.valid"),
        (cmp(0.0, -0.01, 0.01), cmp(0.0, -0.01, 0.01), cmp(0.0, -0.02, 0.02), "reject", "0 superiority metric(s)"),
        (cmp(0.2, 0.05, 0.3), cmp(-0.01, -0.03, 0.01), cmp(0.0, -0.02, 0.02), "reject",
         "inferior or unmeasured: aligned_grounding.margin"),
        (cmp(0.2, 0.05, 0.3), None, cmp(0.0, -0.02, 0.02), "reject", "unmeasured: aligned_grounding.margin"),
    ],
)
def test_the_rule(fmt: PairedComparison, margin: PairedComparison | None, rate: PairedComparison, decision: str,
                  clue: str) -> None:
    comparisons = {"format.valid": fmt, "hallucination.rate": rate}
    if margin is not None:
        comparisons["aligned_grounding.margin"] = margin
    result = decide(comparisons, RULE, "smollm2+lora@1", "gemma3-270m")
    assert result.decision == decision and clue in result.reasons[0], result.reasons[0]
    assert len(result.reasons) == 4  # the summary, then one line per metric with its evidence
    gate = result.as_gate_decision()
    assert isinstance(gate, Decision) and gate.promote == (decision == "promote")
    assert result.as_json()["baseline"] == "gemma3-270m"


def test_promotion_needs_the_claim_and_no_regression_against_the_active() -> None:
    good = {"format.valid": cmp(0.2, 0.05, 0.3), "aligned_grounding.margin": cmp(0.0, -0.01, 0.01),
            "hallucination.rate": cmp(0.0, -0.02, 0.02)}
    flat = {**good, "format.valid": cmp(0.0, -0.01, 0.01)}
    assert decide_promotion(good, flat, RULE, "tuned", "big", "small").promote
    worse = {**flat, "hallucination.rate": cmp(0.1, 0.06, 0.14)}
    rejected = decide_promotion(good, worse, RULE, "tuned", "big", "small")
    assert not rejected.promote and "against the active small: hallucination.rate" in rejected.reasons[0]
    assert not decide_promotion(flat, flat, RULE, "tuned", "big", "small").promote


def test_from_story_values() -> None:
    stories = [f"s{i}" for i in range(20)]
    tuned = {s: 1.0 for s in stories}
    base = {s: float(i % 2) for i, s in enumerate(stories)}  # 10 stories differ, all in the tuned model's favour
    result = decide({"format.valid": paired_comparison(tuned, base),
                     "aligned_grounding.margin": paired_comparison(base, base),
                     "hallucination.rate": paired_comparison(base, base)}, RULE)
    assert result.promote and result.verdicts["format.valid"] == SUPERIOR


@pytest.mark.parametrize("change", [
    {"min_superior": 2}, {"metrics": [{"metric": "x", "role": "best"}]},
    {"metrics": [{"metric": "x", "role": "superiority", "delta": -1}]},
    {"metrics": [{"metric": "x", "role": "superiority"}, {"metric": "x", "role": "non_inferiority"}]},
    {"metrics": [{"role": "superiority"}]}])
def test_a_malformed_decision_block_is_refused(change: dict) -> None:
    with pytest.raises(PlanRuleError):
        DecisionRule.from_plan({**BLOCK, **change})


def test_the_reasons_count_better_and_worse_stories_in_the_metrics_direction() -> None:
    """A lower hallucination rate is better: a candidate lower on 10 stories and higher on 2 is 10 better, 2 worse
    (the cluster's decision record said "0 better, 1 worse" for a candidate that repeated itself less)."""
    from vispod.gate.policy import non_inferior_to

    lower_is_better = RULE.metrics[2]
    guard = non_inferior_to({lower_is_better.metric: cmp(-0.03, -0.05, -0.01, wins=2, losses=10)}, RULE, "c", "a")
    [line] = [r for r in guard.reasons if lower_is_better.metric in r]
    assert "10 better, 2 worse" in line and "-0.030" in line, line
    higher = decide({"format.valid": cmp(0.2, 0.05, 0.3, wins=10, losses=2)}, RULE)
    assert any("format.valid" in r and "10 better, 2 worse" in r for r in higher.reasons)
