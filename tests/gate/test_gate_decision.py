"""The promotion rule on constructed verdicts (pure logic)."""

from __future__ import annotations

import pytest

from vispod.gate.decision import (
    LOSS,
    TIE,
    WIN,
    GateCriteria,
    decide,
    failed_evaluation,
    wilson_interval,
    win_rate,
)

CRITERIA = GateCriteria(criterion="naturalness", tie_policy="half", min_win_rate_lower=0.5, max_grounding_drop=1.0)
GROUND = [20.0] * 5


def one_judge(outcomes: list[str]) -> list[list[str]]:
    """Per-story verdict lists with one judge per story."""
    return [[o] for o in outcomes]


def test_the_story_is_the_unit_not_story_times_judge() -> None:
    """10 stories at 80% wins: four agreeing judges are not 40 independent samples (FACTS.md)."""
    stories = [WIN] * 8 + [LOSS] * 2
    single = decide(one_judge(stories), GROUND, GROUND, CRITERIA)
    panel = decide([[o] * 4 for o in stories], GROUND, GROUND, CRITERIA)
    assert single.evidence["n"] == panel.evidence["n"] == 10
    assert panel.evidence["win_rate_lower"] == pytest.approx(single.evidence["win_rate_lower"]) == pytest.approx(
        wilson_interval(8, 10)[0])
    assert not single.promote and not panel.promote
    assert panel.evidence["wins"] == 32  # verdict counts stay reported


def test_judges_who_disagree_on_a_story_share_it() -> None:
    split = decide([[WIN, WIN, LOSS, TIE]] * 10, GROUND, GROUND, CRITERIA)  # each story: (2 + 0.5) / 4
    assert split.evidence["win_rate"] == pytest.approx(0.625) and split.evidence["n"] == 10
    excl = decide([[WIN, LOSS, "invalid"], [TIE, TIE], ["invalid"]], GROUND, GROUND,
                  GateCriteria(tie_policy="exclude"))
    assert excl.evidence["n"] == 1 and excl.evidence["win_rate"] == pytest.approx(0.5)  # all-tie story has no say
    assert excl.evidence["invalid"] == 2


def test_wilson_matches_the_known_interval() -> None:
    low, high = wilson_interval(40, 50)  # FACTS.md: 40/50 wins -> about 0.67-0.89
    assert low == pytest.approx(0.6696, abs=1e-3)
    assert high == pytest.approx(0.8876, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(3, 3)[0] == pytest.approx(0.4385, abs=1e-3)  # 3 of 3 is not yet evidence


def test_tie_policies() -> None:
    outcomes = [WIN] * 6 + [TIE] * 2 + [LOSS] * 2 + ["invalid"]
    half, loss, excl = (win_rate(outcomes, p) for p in ("half", "loss", "exclude"))
    assert (half.n, half.rate) == (10, pytest.approx(0.7))
    assert (loss.n, loss.rate) == (10, pytest.approx(0.6))
    assert (excl.n, excl.rate) == (8, pytest.approx(0.75))
    assert half.invalid == 1 and half.ties == 2


def test_promotes_a_clear_winner_whose_grounding_holds() -> None:
    d = decide(one_judge([WIN] * 18 + [TIE] * 2), [19.5] * 5, GROUND, CRITERIA)
    assert d.promote and not d.failed
    assert d.evidence["win_rate_lower"] > 0.5
    assert d.evidence["grounding_delta"] == pytest.approx(-0.5)
    assert d.evidence["n"] == 20


def test_rejects_when_the_lower_bound_is_not_above_the_threshold() -> None:
    d = decide(one_judge([WIN] * 3), GROUND, GROUND, CRITERIA)  # 100% of 3: the interval still reaches down to 0.44
    assert not d.promote and "lower bound" in d.reason
    d = decide(one_judge([WIN] * 11 + [LOSS] * 9), GROUND, GROUND, CRITERIA)
    assert not d.promote


def test_ties_count_as_configured() -> None:
    outcomes = [WIN] * 12 + [TIE] * 8
    assert decide(one_judge(outcomes), GROUND, GROUND, CRITERIA).promote  # half: 0.8
    strict = GateCriteria(tie_policy="loss")
    assert not decide(one_judge(outcomes), GROUND, GROUND, strict).promote  # loss: 0.6 of 20, lower 0.39


def test_rejects_a_grounding_drop_beyond_the_margin() -> None:
    d = decide(one_judge([WIN] * 20), [18.5] * 5, GROUND, CRITERIA)
    assert not d.promote and "CLIPScore fell by 1.50" in d.reason
    assert d.evidence["grounding_delta"] == pytest.approx(-1.5)
    assert decide(one_judge([WIN] * 20), [19.1] * 5, GROUND, CRITERIA).promote  # within the margin


def test_rejects_without_valid_verdicts_or_grounding() -> None:
    assert "no valid" in decide(one_judge(["invalid"] * 4), GROUND, GROUND, CRITERIA).reason
    assert "not measured" in decide(one_judge([WIN] * 20), [], [], CRITERIA).reason
    with pytest.raises(ValueError):
        decide(one_judge([WIN]), [1.0], [], CRITERIA)


def test_a_failed_evaluation_is_a_recorded_rejection() -> None:
    d = failed_evaluation("judge unreachable")
    assert not d.promote and d.failed and d.reason == "evaluation failed: judge unreachable"
