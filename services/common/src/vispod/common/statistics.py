"""The statistics of vispod, in one place: Wilson score intervals for win rates, and the story-level bootstrap.

Wilson: the score interval of a binomial proportion (95% by default); fractional successes (ties counted as
half, judges who disagree) are accepted as the normal approximation they are; (0, 1) with no observation.

Bootstrap: 95% percentile intervals for a mean and for a paired difference of two systems' means.

The story is the statistical unit: each resample draws stories with replacement (turns, photos or judges inside
one story are not independent), and a difference resamples the *same* stories for both systems (paired).

Missing values. A metric may be undefined for some stories — average turn length exists only for valid
dialogues, retrieval accuracy only where a turn names one photo. Such a story is given as None (or NaN). It is
still drawn in resamples; each resample's mean is over the defined values it drew (a ratio estimator), so the
interval carries the uncertainty of *how many* stories had a value, not only of the values. For a difference,
each side averages its own defined values within the same drawn stories; a story present for one system only
is missing for the other. A resample that draws no defined value for a side is dropped; `n_resamples_used`
says how many remained. With no defined value at all, estimate and interval are None.

Seeded (numpy's default_rng): the same inputs and seed give the same interval.

Paired comparisons (the decision's statistics, `paired_comparison`): per story the difference a − b over the
stories where both are defined; its mean with a BCa bootstrap interval (bias-corrected and accelerated, Efron
1987: percentiles moved by the bootstrap's median bias z0 and the jackknife's skew a — the percentile interval
is too narrow and off-centre for skewed, small samples such as 20 stories of rates), and the exact two-sided
sign test over the stories that differ (ties dropped). `non_inferior`: point estimate and lower bound both above
−δ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

N_RESAMPLES = 2000
CONFIDENCE = 0.95
Z95 = 1.959963984540054


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when there is no observation."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)

Values = Mapping[str, float | None] | Sequence[float | None]


@dataclass(frozen=True)
class Interval:
    estimate: float | None  # the mean (or difference of means) on the stories as observed
    lower: float | None
    upper: float | None
    n: int  # stories with a defined value (difference: with a value on both sides)
    n_stories: int  # stories drawn from, missing values included
    n_resamples_used: int

    @property
    def ci(self) -> list[float | None]:
        return [self.lower, self.upper]

    def as_json(self) -> dict[str, object]:
        return {"estimate": self.estimate, "ci": self.ci, "n": self.n, "n_stories": self.n_stories}


def _column(values: Values, keys: Sequence[str] | None = None) -> np.ndarray:
    if isinstance(values, Mapping):
        seq = [values.get(k) for k in (keys if keys is not None else list(values))]
    else:
        seq = list(values)
    return np.array([math.nan if v is None else float(v) for v in seq], dtype=float)


def _resampled_means(col: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean of the defined values in each resample (rows of idx); NaN where a resample drew none."""
    defined = ~np.isnan(col)
    drawn = idx.shape[1]
    sums = np.where(defined, col, 0.0)[idx].sum(axis=1) if drawn else np.zeros(len(idx))
    counts = defined[idx].sum(axis=1) if drawn else np.zeros(len(idx))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), math.nan)


def _observed_mean(col: np.ndarray) -> float | None:
    defined = col[~np.isnan(col)]
    return float(defined.mean()) if defined.size else None


def _percentiles(stats: np.ndarray, confidence: float) -> tuple[float | None, float | None, int]:
    ok = stats[~np.isnan(stats)]
    if not ok.size:
        return None, None, 0
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(ok, [tail, 100 - tail])
    return float(lo), float(hi), int(ok.size)


def _indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n)) if n else np.zeros((n_resamples, 0),
                                                                                                   dtype=int)


def bootstrap_mean(values: Values, *, n_resamples: int = N_RESAMPLES, seed: int = 0,
                   confidence: float = CONFIDENCE) -> Interval:
    """Mean of per-story values (story id -> value, or a sequence) with its bootstrap percentile interval."""
    col = _column(values)
    estimate = _observed_mean(col)
    n = int((~np.isnan(col)).sum())
    if estimate is None:
        return Interval(None, None, None, 0, len(col), 0)
    lo, hi, used = _percentiles(_resampled_means(col, _indices(len(col), n_resamples, seed)), confidence)
    return Interval(estimate, lo, hi, n, len(col), used)


def bootstrap_difference(a: Mapping[str, float | None], b: Mapping[str, float | None], *,
                         n_resamples: int = N_RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE) -> Interval:
    """mean(a) − mean(b) over the stories of either, stories resampled in pairs; story id -> value (or None)."""
    keys = sorted(set(a) | set(b))
    ca, cb = _column(a, keys), _column(b, keys)
    ma, mb = _observed_mean(ca), _observed_mean(cb)
    both = int((~np.isnan(ca) & ~np.isnan(cb)).sum())
    if ma is None or mb is None:
        return Interval(None, None, None, both, len(keys), 0)
    idx = _indices(len(keys), n_resamples, seed)
    lo, hi, used = _percentiles(_resampled_means(ca, idx) - _resampled_means(cb, idx), confidence)
    return Interval(ma - mb, lo, hi, both, len(keys), used)


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign test: P(a split at least this uneven | each differing story a fair coin); 1.0 with
    no differing story."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedComparison:
    """a − b on the stories both have: mean difference, its BCa interval, the sign test."""

    estimate: float | None
    lower: float | None
    upper: float | None
    n: int  # stories with a value on both sides
    wins: int  # stories where a > b
    losses: int  # stories where a < b
    ties: int
    sign_p: float  # exact two-sided sign test over the wins and losses
    confidence: float

    @property
    def differing(self) -> int:
        return self.wins + self.losses

    def as_json(self) -> dict[str, object]:
        return {"estimate": self.estimate, "ci": [self.lower, self.upper], "n": self.n, "wins": self.wins,
                "losses": self.losses, "ties": self.ties, "differing": self.differing, "sign_p": self.sign_p,
                "confidence": self.confidence, "interval": "BCa"}


def bca_interval(values: Sequence[float], *, n_resamples: int = N_RESAMPLES, seed: int = 0,
                 confidence: float = CONFIDENCE) -> tuple[float, float]:
    """BCa bootstrap interval of the mean of `values` (at least one value)."""
    x = np.asarray(values, dtype=float)
    estimate = float(x.mean())
    boot = x[_indices(len(x), n_resamples, seed)].mean(axis=1)
    if np.all(boot == estimate):
        return estimate, estimate
    normal = NormalDist()
    below = float(np.mean(boot < estimate)) + 0.5 * float(np.mean(boot == estimate))
    z0 = normal.inv_cdf(min(max(below, 1 / (2 * n_resamples)), 1 - 1 / (2 * n_resamples)))
    jack = (x.sum() - x) / (len(x) - 1) if len(x) > 1 else x
    spread = jack.mean() - jack
    denom = 6 * float((spread**2).sum()) ** 1.5
    accel = float((spread**3).sum()) / denom if denom > 0 else 0.0
    bounds = []
    for alpha in ((1 - confidence) / 2, (1 + confidence) / 2):
        z = z0 + normal.inv_cdf(alpha)
        bounds.append(normal.cdf(z0 + z / (1 - accel * z)) * 100)
    lo, hi = np.percentile(boot, bounds)
    return float(lo), float(hi)


def paired_comparison(a: Mapping[str, float | None], b: Mapping[str, float | None], *,
                      n_resamples: int = N_RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE,
                      tie_tolerance: float = 1e-12) -> PairedComparison:
    """a − b story by story (story id -> value or None): the mean of the paired differences with its BCa
    interval and the exact sign test. A difference within `tie_tolerance` of 0 is a tie."""
    keys = sorted(k for k in set(a) & set(b) if _defined(a[k]) and _defined(b[k]))
    diffs = [float(a[k]) - float(b[k]) for k in keys]  # type: ignore[arg-type]
    wins = sum(d > tie_tolerance for d in diffs)
    losses = sum(d < -tie_tolerance for d in diffs)
    ties = len(diffs) - wins - losses
    if not diffs:
        return PairedComparison(None, None, None, 0, 0, 0, 0, 1.0, confidence)
    lo, hi = bca_interval(diffs, n_resamples=n_resamples, seed=seed, confidence=confidence)
    return PairedComparison(float(np.mean(diffs)), lo, hi, len(diffs), wins, losses, ties, sign_test(wins, losses),
                            confidence)


def non_inferior(comparison: PairedComparison, delta: float) -> bool:
    """Not worse by more than δ: the point estimate and the interval's lower bound both above −δ."""
    return (comparison.estimate is not None and comparison.lower is not None
            and comparison.estimate > -delta and comparison.lower > -delta)


def _defined(value: float | None) -> bool:
    return value is not None and math.isfinite(float(value))


def finite(value: object) -> object:
    """The same structure with NaN and infinities as None (JSON has neither): undefined statistics become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
