"""The offline promotion policy: two of three improved, the third not worse, grounding not worse."""

from __future__ import annotations

import pytest

from vispod.common.statistics import Interval, bootstrap_difference
from vispod.gate.decision import Decision
from vispod.gate.offline_policy import IMPROVED, NOT_WORSE, UNMEASURED, WORSE, classify, decide_offline


def iv(lo: float, hi: float) -> Interval:
    return Interval((lo + hi) / 2, lo, hi, 20, 20, 2000)


UP, FLAT, DOWN = iv(0.05, 0.30), iv(-0.10, 0.10), iv(-0.30, -0.02)


def test_classify_precisely_at_the_bounds() -> None:
    assert classify(iv(0.001, 0.2)) == IMPROVED
    assert classify(iv(0.0, 0.2)) == NOT_WORSE  # a lower bound of exactly 0 is not above 0
    assert classify(iv(-0.2, 0.0)) == NOT_WORSE  # an upper bound of exactly 0 does not show it worse
    assert classify(iv(-0.2, -0.001)) == WORSE
    assert classify(None) == UNMEASURED
    assert classify(Interval(None, None, None, 0, 20, 0)) == UNMEASURED


@pytest.mark.parametrize(
    ("fmt", "coverage", "d2", "decision", "clue"),
    [
        (UP, UP, UP, "promote", "improved on format_valid_rate, caption_coverage, distinct_2"),
        (UP, FLAT, UP, "promote", "improved on format_valid_rate, distinct_2"),
        (UP, UP, FLAT, "promote", "nothing worse"),
        (UP, FLAT, FLAT, "reject", "1 of 3 metrics improved, 2 needed"),
        (UP, UP, DOWN, "reject", "worse or unmeasured: distinct_2"),
        (UP, DOWN, UP, "reject", "worse or unmeasured: caption_coverage"),
        (UP, None, UP, "reject", "worse or unmeasured: caption_coverage"),
    ],
)
def test_the_rule(fmt: Interval, coverage: Interval | None, d2: Interval, decision: str, clue: str) -> None:
    diffs = {"format_valid_rate": fmt, "distinct_2": d2}
    if coverage is not None:
        diffs["caption_coverage"] = coverage
    result = decide_offline(diffs, "smollm2+lora@1", "smollm2-135m-base")
    assert result.decision == decision and clue in result.reasons[0]
    assert len(result.reasons) == 4  # the summary, then one line per metric with its interval
    gate = result.as_gate_decision()
    assert isinstance(gate, Decision) and gate.promote == (decision == "promote")
    assert gate.evidence["improved"] == sum(v == IMPROVED for v in result.verdicts.values())
    assert result.as_json()["baseline"] == "smollm2-135m-base"


def test_from_story_level_bootstraps() -> None:
    stories = [f"s{i}" for i in range(20)]
    cand = {"format_valid_rate": {s: 1.0 for s in stories},
            "caption_coverage": {s: 0.8 + (i % 3) * 0.1 for i, s in enumerate(stories)},
            "distinct_2": {s: 0.9 for s in stories}}
    base = {"format_valid_rate": {s: float(i % 4 == 0) for i, s in enumerate(stories)},
            "caption_coverage": {s: 0.4 + (i % 2) * 0.2 for i, s in enumerate(stories)},
            "distinct_2": {s: 0.9 for s in stories}}
    diffs = {m: bootstrap_difference(cand[m], base[m]) for m in cand}
    result = decide_offline(diffs)
    assert result.promote
    assert result.verdicts == {"format_valid_rate": IMPROVED, "caption_coverage": IMPROVED, "distinct_2": NOT_WORSE}


@pytest.mark.parametrize(
    ("claim", "active", "decision", "clue"),
    [
        ((UP, FLAT, UP), (FLAT, FLAT, UP), "promote", "nothing worse than the active small"),
        ((UP, FLAT, UP), (FLAT, DOWN, UP), "reject", "worse or unmeasured against the active small: caption_coverage"),
        ((UP, FLAT, FLAT), (UP, UP, UP), "reject", "1 of 3 metrics improved, 2 needed"),
        ((UP, UP, UP), (FLAT, None, FLAT), "reject", "against the active small: caption_coverage"),
    ],
)
def test_promotion_needs_the_claim_against_the_bigger_base_and_no_regression(
        claim: tuple, active: tuple, decision: str, clue: str) -> None:
    from vispod.gate.offline_policy import decide_promotion

    names = ("format_valid_rate", "caption_coverage", "distinct_2")
    d = decide_promotion({m: v for m, v in zip(names, claim, strict=True) if v is not None},
                         {m: v for m, v in zip(names, active, strict=True) if v is not None},
                         "tuned", "big", "small")
    assert d.decision == decision
    assert clue in d.reasons[0] or any(clue in r for r in d.reasons)
    assert d.baseline == "big"
