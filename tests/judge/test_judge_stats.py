"""Statistics on constructed verdicts with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vispod.judge import stats
from vispod.judge.stats import INVALID, TIE, A, B, Record


def test_wilson_matches_the_published_example() -> None:
    low, high = stats.wilson_interval(40, 50)
    assert low == pytest.approx(0.6696, abs=5e-4)
    assert high == pytest.approx(0.8876, abs=5e-4)
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    low0, high0 = stats.wilson_interval(0, 10)
    assert low0 == 0.0 and high0 == pytest.approx(0.2775, abs=5e-4)


@pytest.mark.parametrize(
    ("ab", "ba", "expected"),
    [(A, A, A), (B, B, B), (A, B, TIE), (B, A, TIE), (TIE, A, TIE), (TIE, TIE, TIE), (A, INVALID, INVALID)],
)
def test_both_orders_must_agree(ab: str, ba: str, expected: str) -> None:
    assert stats.combine_orders(ab, ba) == expected


def test_cohen_kappa_textbook_example() -> None:
    # 2x2 table [[20, 5], [10, 15]]: p_o = 0.7, p_e = 0.5 -> kappa 0.4
    x = [A] * 25 + [B] * 25
    y = [A] * 20 + [B] * 5 + [A] * 10 + [B] * 15
    assert stats.cohen_kappa(x, y) == pytest.approx(0.4)
    assert stats.cohen_kappa(x, x) == pytest.approx(1.0)
    assert math.isnan(stats.cohen_kappa([A, A], [A, A]))  # chance agreement 1: undefined
    assert math.isnan(stats.cohen_kappa([], []))


def test_fleiss_kappa_textbook_example() -> None:
    # Fleiss (1971) worked example as tabulated on Wikipedia: 10 items, 14 raters, 5 categories -> 0.210
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    cats = ["c1", "c2", "c3", "c4", "c5"]
    ratings = [[c for c, k in zip(cats, row, strict=True) for _ in range(k)] for row in table]
    assert stats.fleiss_kappa(ratings, cats) == pytest.approx(0.2099, abs=1e-3)
    assert stats.fleiss_kappa([[A, A, A], [B, B, B], [TIE, TIE, TIE]]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        stats.fleiss_kappa([[A], [B]])


def test_logistic_fit_recovers_grouped_mle() -> None:
    # x=-1: 20% wins, x=+1: 80% wins -> intercept 0, slope logit(0.8)
    x = np.array([-1.0] * 50 + [1.0] * 50)
    y = np.array([1.0] * 10 + [0.0] * 40 + [1.0] * 40 + [0.0] * 10)
    fit = stats.logistic_fit(x, y, l2=0.0)
    assert fit.converged
    assert fit.coef[0] == pytest.approx(0.0, abs=1e-8)
    assert fit.coef[1] == pytest.approx(math.log(4.0), abs=1e-8)


def test_logistic_fit_stays_finite_under_perfect_separation() -> None:
    fit = stats.logistic_fit(np.array([-1.0, -1.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0, 1.0]))
    assert np.all(np.isfinite(fit.coef))


def test_length_controlled_rate_removes_the_length_effect() -> None:
    # A longer by 100 words in half the pairs (wins 90%), shorter by 100 in the other half (wins 20%).
    outcomes = [A] * 45 + [B] * 5 + [A] * 10 + [B] * 40
    len_a = [300.0] * 50 + [100.0] * 50
    len_b = [200.0] * 100
    lc = stats.length_controlled_win_rate(outcomes, len_a, len_b)
    # intercept = (logit 0.9 + logit 0.2) / 2 = log(1.5) -> 0.6, while the raw rate is 0.55
    assert lc.win_rate == pytest.approx(0.6, abs=2e-3)
    assert lc.slope > 0
    assert lc.ci_low < lc.win_rate < lc.ci_high
    assert lc.n == 100


def test_length_controlled_equals_raw_without_length_differences() -> None:
    outcomes = [A] * 30 + [B] * 10 + [TIE] * 10 + [INVALID] * 3
    lc = stats.length_controlled_win_rate(outcomes, [500.0] * 53, [500.0] * 53)
    assert lc.win_rate == pytest.approx((30 + 5) / 50, abs=1e-9)
    assert lc.n == 50


def _records() -> list[Record]:
    out = []
    # judge j1 on "naturalness": 40 wins (both orders agree), 5 order flips (primacy), 3 agreed losses, 2 invalid
    for i in range(40):
        out.append(Record(f"s{i}", "j1", "naturalness", A, A, A, 900, 600))
    for i in range(40, 45):
        out.append(Record(f"s{i}", "j1", "naturalness", TIE, A, B, 900, 600))
    for i in range(45, 48):
        out.append(Record(f"s{i}", "j1", "naturalness", B, B, B, 900, 600))
    for i in range(48, 50):
        out.append(Record(f"s{i}", "j1", "naturalness", INVALID, A, INVALID, 900, 600))
    # judge j2 agrees on s0..s39, says B on the rest
    for i in range(50):
        outcome = A if i < 40 else B
        out.append(Record(f"s{i}", "j2", "naturalness", outcome, outcome, outcome, 900, 600))
    return out


def test_summary_counts_rates_and_flips() -> None:
    report = stats.summarize(_records())
    j1 = next(c for c in report.cells if c.judge == "j1")
    assert (j1.wins, j1.ties, j1.losses, j1.invalid, j1.n) == (40, 5, 3, 2, 50)
    assert j1.win_rate == pytest.approx(42.5 / 48)
    assert j1.win_rate_excl_ties == pytest.approx(40 / 43)
    assert j1.win_rate_ci == pytest.approx(stats.wilson_interval(42.5, 48))
    assert j1.win_rate_excl_ties_ci == pytest.approx(stats.wilson_interval(40, 43))
    assert j1.position_pairs == 48 and j1.position_bias_rate == pytest.approx(5 / 48)
    assert (j1.primacy, j1.recency) == (5, 0)
    # every pair has the same length difference: LC cannot separate length from quality -> equals raw
    assert j1.lc_win_rate == pytest.approx(j1.win_rate, abs=1e-6)
    # agreement on the 48 items both judged validly: j1 = 40 A, 5 tie, 3 B; j2 = 40 A, 8 B
    x = [A] * 40 + [TIE] * 5 + [B] * 3
    y = [A] * 40 + [B] * 8
    assert report.cohen_kappa["naturalness"]["j1|j2"] == pytest.approx(stats.cohen_kappa(x, y))
    assert report.fleiss_kappa["naturalness"] == pytest.approx(
        stats.fleiss_kappa([list(p) for p in zip(x, y, strict=True)])
    )
    doc = report.to_dict()
    assert doc["cells"][0]["judge"] == "j1"
    table = stats.format_table(report)
    assert "naturalness" in table and "Fleiss" in table


def test_empty_cell_is_nan_not_an_error() -> None:
    cell = stats.cell_stats("j", "c", [Record("x", "j", "c", INVALID)])
    assert math.isnan(cell.win_rate) and math.isnan(cell.lc_win_rate) and cell.invalid == 1
    assert stats.Report(cells=[cell]).to_dict()["cells"][0]["win_rate"] is None
