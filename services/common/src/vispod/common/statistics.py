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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


def finite(value: object) -> object:
    """The same structure with NaN and infinities as None (JSON has neither): undefined statistics become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
