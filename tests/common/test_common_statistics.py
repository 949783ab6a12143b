"""Story-level bootstrap: seeded percentile intervals for means and paired differences, missing values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vispod.common.statistics import bootstrap_difference, bootstrap_mean


def test_mean_interval_is_seeded_and_covers_the_mean() -> None:
    values = {f"s{i}": float(v) for i, v in enumerate(np.random.default_rng(1).normal(10, 2, 30))}
    first = bootstrap_mean(values, seed=7)
    assert first == bootstrap_mean(values, seed=7)
    assert first != bootstrap_mean(values, seed=8)
    assert first.lower < first.estimate < first.upper
    assert first.estimate == pytest.approx(np.mean(list(values.values())))
    # the percentile interval of a mean is about ±1.96 standard errors
    se = np.std(list(values.values()), ddof=1) / math.sqrt(30)
    assert first.upper - first.lower == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert (first.n, first.n_stories, first.n_resamples_used) == (30, 30, 2000)
    assert bootstrap_mean(list(values.values()), n_resamples=500).n_resamples_used == 500


def test_constant_values_give_a_point_interval() -> None:
    iv = bootstrap_mean([1.0] * 12)
    assert (iv.estimate, iv.lower, iv.upper) == (1.0, 1.0, 1.0)


def test_paired_difference_sees_a_consistent_small_gain() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(50, 10, 20)  # stories differ a lot ...
    a = {f"s{i}": float(v + 1.0) for i, v in enumerate(base)}  # ... but a beats b by 1 on every story
    b = {f"s{i}": float(v) for i, v in enumerate(base)}
    paired = bootstrap_difference(a, b, seed=0)
    assert paired.estimate == pytest.approx(1.0) and paired.lower == pytest.approx(1.0)
    assert paired.upper == pytest.approx(1.0)
    unpaired_like = bootstrap_difference(a, {f"s{i}": float(v) for i, v in enumerate(rng.permutation(base))})
    assert unpaired_like.lower < 0 < unpaired_like.upper  # the pairing is what makes the gain visible


def test_missing_values_are_drawn_but_not_averaged() -> None:
    values = {"a": 40.0, "b": None, "c": 60.0, "d": math.nan}
    iv = bootstrap_mean(values, seed=0)
    assert iv.estimate == 50.0 and (iv.n, iv.n_stories) == (2, 4)
    assert 40.0 <= iv.lower <= iv.upper <= 60.0
    assert iv.n_resamples_used < 2000  # resamples that drew only b and d carry no mean
    none = bootstrap_mean({"a": None, "b": None})
    assert (none.estimate, none.lower, none.upper, none.n) == (None, None, None, 0)
    assert bootstrap_mean([]).estimate is None


def test_difference_with_stories_missing_on_one_side() -> None:
    a = {"s1": 1.0, "s2": 1.0, "s3": None, "s4": 1.0}
    b = {"s1": 0.0, "s2": 0.0, "s3": 0.0}  # s4 absent for b: missing there
    iv = bootstrap_difference(a, b, seed=1)
    assert iv.estimate == 1.0 and (iv.n, iv.n_stories) == (2, 4)
    assert iv.lower == iv.upper == 1.0
    assert bootstrap_difference(a, {"s1": None}).estimate is None
    assert iv.as_json()["ci"] == [1.0, 1.0]


def test_exact_sign_test() -> None:
    from vispod.common.statistics import sign_test

    assert sign_test(5, 0) == pytest.approx(0.0625)  # 5 of 5 stories one way: 2 / 2**5
    assert sign_test(0, 5) == sign_test(5, 0) and sign_test(0, 0) == 1.0 and sign_test(3, 3) == 1.0
    assert sign_test(15, 5) == pytest.approx(0.04139, abs=1e-5)  # binomial tail, both sides


def test_bca_interval_matches_scipy_and_leans_with_the_skew() -> None:
    from scipy import stats

    from vispod.common.statistics import bca_interval

    x = np.random.default_rng(3).exponential(1.0, 25)
    lo, hi = bca_interval(x, n_resamples=4000, seed=1)
    ref = stats.bootstrap((x,), np.mean, n_resamples=4000, method="BCa", random_state=1).confidence_interval
    assert lo == pytest.approx(ref.low, rel=0.06) and hi == pytest.approx(ref.high, rel=0.06)
    mean = float(x.mean())
    assert hi - mean > mean - lo  # a right-skewed sample's mean: the interval reaches further up
    assert bca_interval([0.5] * 8) == (0.5, 0.5)


def test_paired_comparison_counts_differing_stories_and_non_inferiority() -> None:
    from vispod.common.statistics import non_inferior, paired_comparison

    a = {"s1": 1.0, "s2": 1.0, "s3": 0.5, "s4": 0.8, "s5": None, "s6": 0.9}
    b = {"s1": 0.5, "s2": 1.0, "s3": 0.6, "s4": 0.4, "s5": 0.3, "s7": 0.1}
    cmp = paired_comparison(a, b, seed=2)
    assert (cmp.n, cmp.wins, cmp.losses, cmp.ties, cmp.differing) == (4, 2, 1, 1, 3)  # s5-s7 unpaired
    assert cmp.estimate == pytest.approx((0.5 + 0 - 0.1 + 0.4) / 4)
    assert cmp.lower <= cmp.estimate <= cmp.upper and cmp.sign_p == 1.0
    assert non_inferior(cmp, delta=0.2) is (cmp.lower > -0.2)
    assert not non_inferior(cmp, delta=0.0) or cmp.lower > 0
    worse = paired_comparison({f"s{i}": 0.0 for i in range(10)}, {f"s{i}": 0.03 for i in range(10)})
    assert worse.estimate == pytest.approx(-0.03) and worse.losses == 10
    assert non_inferior(worse, 0.05) and not non_inferior(worse, 0.02)  # point and bound both above −δ
    assert paired_comparison({"a": None}, {"a": 1.0}).estimate is None
