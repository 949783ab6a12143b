"""Win-rate statistics of pairwise judgements (numpy only).

Conventions, fixed here once:
- An outcome is from system A's point of view: "A" (A wins), "B" (B wins), "tie", "invalid".
- Invalid verdicts never enter a denominator; they are counted and reported beside the rates.
- Two win rates are reported. The headline `win_rate` counts a tie as half a win over all valid
  verdicts (MT-Bench / AlpacaEval practice: a tie is evidence of parity, dropping it overstates a
  lead). `win_rate_excl_ties` is wins / (wins + losses), the decisive share. Each has a Wilson 95%
  interval; with ties as half, the "successes" are fractional, which the Wilson formula accepts
  as a normal approximation.
- Position bias: share of pairs (both orders valid) whose two raw verdicts, mapped back to A/B,
  disagree. `primacy` counts disagreements where the judge picked whichever answer it saw
  first in both orders; `recency` whichever it saw second.
- Length-controlled win rate (AlpacaEval-LC style): a logistic regression of the outcome (win 1,
  tie 0.5, loss 0) on tanh(length difference / its standard deviation); the LC rate is the predicted
  win probability at zero length difference, sigmoid(intercept).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations

import numpy as np

from vispod.common.statistics import Z95, finite, wilson_interval

A, B, TIE, INVALID = "A", "B", "tie", "invalid"
OUTCOMES = (A, B, TIE, INVALID)
_VALID = (A, B, TIE)


@dataclass(frozen=True)
class Record:
    """One judge's debiased verdict on one item (a pair of dialogues) for one criterion."""

    item: str
    judge: str
    criterion: str
    outcome: str
    # Raw verdicts in presentation order A-first and B-first, already mapped back to A/B.
    outcome_ab: str = INVALID
    outcome_ba: str = INVALID
    # Length of each dialogue (words), for the length-controlled rate.
    len_a: float = 0.0
    len_b: float = 0.0


def combine_orders(outcome_ab: str, outcome_ba: str) -> str:
    """MT-Bench rule: a win only when both presentation orders agree; any disagreement is a tie."""
    if INVALID in (outcome_ab, outcome_ba):
        return INVALID
    return outcome_ab if outcome_ab == outcome_ba else TIE


# --- agreement -------------------------------------------------------------------------------


def cohen_kappa(x: Sequence[str], y: Sequence[str], categories: Sequence[str] = _VALID) -> float:
    """Cohen's κ of two raters over the same items; NaN when undefined (no items, or chance agreement 1)."""
    if len(x) != len(y):
        raise ValueError("raters must label the same items")
    if not x:
        return math.nan
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    for a, b in zip(x, y, strict=True):
        table[index[a], index[b]] += 1
    n = table.sum()
    observed = np.trace(table) / n
    expected = float(table.sum(axis=1) @ table.sum(axis=0)) / (n * n)
    if math.isclose(expected, 1.0):
        return math.nan
    return float((observed - expected) / (1.0 - expected))


def fleiss_kappa(ratings: Sequence[Sequence[str]], categories: Sequence[str] = _VALID) -> float:
    """Fleiss' κ; `ratings[i]` holds every rater's label for item i (same number of raters per item)."""
    if not ratings:
        return math.nan
    raters = len(ratings[0])
    if raters < 2 or any(len(r) != raters for r in ratings):
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings per item")
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros((len(ratings), len(categories)))
    for i, item in enumerate(ratings):
        for label in item:
            counts[i, index[label]] += 1
    n_items = counts.shape[0]
    p_j = counts.sum(axis=0) / (n_items * raters)
    p_i = ((counts * counts).sum(axis=1) - raters) / (raters * (raters - 1))
    p_bar = p_i.mean()
    p_e = float((p_j * p_j).sum())
    if math.isclose(p_e, 1.0):
        return math.nan
    return float((p_bar - p_e) / (1.0 - p_e))


# --- logistic regression ------------------------------------------------------------------------


@dataclass(frozen=True)
class LogisticFit:
    coef: np.ndarray  # [intercept, slope, ...]
    cov: np.ndarray  # inverse of the penalised Fisher information
    iterations: int
    converged: bool


def logistic_fit(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    l2: float = 1e-4,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> LogisticFit:
    """Newton/IRLS logistic regression with an intercept; y may be fractional (0.5 for a tie).

    A small ridge penalty on the slopes (never the intercept) keeps the fit finite when length
    separates wins from losses perfectly, which happens with few pairs.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(y, dtype=float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    design = np.hstack([np.ones((x.shape[0], 1)), x])
    penalty = np.full(design.shape[1], l2 * max(w.sum(), 1.0))
    penalty[0] = 0.0
    beta = np.zeros(design.shape[1])
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - reported as iterations
        eta = design @ beta
        mu = 1.0 / (1.0 + np.exp(-eta))
        grad = design.T @ (w * (y - mu)) - penalty * beta
        hess = (design * (w * mu * (1 - mu))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hess + 1e-12 * np.eye(len(beta)), grad)
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            converged = True
            break
    mu = 1.0 / (1.0 + np.exp(-(design @ beta)))
    hess = (design * (w * mu * (1 - mu))[:, None]).T @ design + np.diag(penalty)
    cov = np.linalg.pinv(hess)
    return LogisticFit(coef=beta, cov=cov, iterations=it, converged=converged)


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


@dataclass(frozen=True)
class LengthControlled:
    win_rate: float
    ci_low: float
    ci_high: float
    intercept: float
    slope: float
    n: int


def length_controlled_win_rate(
    outcomes: Sequence[str], len_a: Sequence[float], len_b: Sequence[float]
) -> LengthControlled:
    """Predicted win probability of A at zero length difference (ties as 0.5; invalid skipped).

    Feature: tanh((len_a − len_b) / std), as in AlpacaEval-LC; the interval comes from the
    intercept's standard error (delta method on the logit scale).
    """
    ys, diffs = [], []
    for outcome, la, lb in zip(outcomes, len_a, len_b, strict=True):
        if outcome == INVALID:
            continue
        ys.append(1.0 if outcome == A else 0.0 if outcome == B else 0.5)
        diffs.append(float(la) - float(lb))
    if not ys:
        return LengthControlled(math.nan, math.nan, math.nan, math.nan, math.nan, 0)
    d = np.asarray(diffs)
    scale = d.std()
    feature = np.tanh(d / scale) if scale > 0 else np.zeros_like(d)
    fit = logistic_fit(feature, np.asarray(ys))
    b0, se = float(fit.coef[0]), math.sqrt(max(float(fit.cov[0, 0]), 0.0))
    return LengthControlled(
        win_rate=_sigmoid(b0),
        ci_low=_sigmoid(b0 - Z95 * se),
        ci_high=_sigmoid(b0 + Z95 * se),
        intercept=b0,
        slope=float(fit.coef[1]),
        n=len(ys),
    )


# --- the report ---------------------------------------------------------------------------------


@dataclass
class CellStats:
    """Statistics of one judge on one criterion."""

    judge: str
    criterion: str
    n: int
    wins: int
    ties: int
    losses: int
    invalid: int
    win_rate: float  # ties as half, over valid verdicts
    win_rate_ci: tuple[float, float]
    win_rate_excl_ties: float
    win_rate_excl_ties_ci: tuple[float, float]
    position_bias_rate: float
    position_pairs: int
    primacy: int
    recency: int
    lc_win_rate: float
    lc_win_rate_ci: tuple[float, float]
    lc_slope: float


@dataclass
class Report:
    cells: list[CellStats] = field(default_factory=list)
    # criterion -> "judgeX|judgeY" -> κ
    cohen_kappa: dict[str, dict[str, float]] = field(default_factory=dict)
    fleiss_kappa: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return finite(asdict(self))


def _rate(num: float, den: float) -> float:
    return num / den if den else math.nan


def cell_stats(judge: str, criterion: str, records: Sequence[Record]) -> CellStats:
    wins = sum(r.outcome == A for r in records)
    losses = sum(r.outcome == B for r in records)
    ties = sum(r.outcome == TIE for r in records)
    invalid = sum(r.outcome == INVALID for r in records)
    valid = wins + losses + ties
    half = wins + 0.5 * ties
    both = [r for r in records if r.outcome_ab in _VALID and r.outcome_ba in _VALID]
    flips = [r for r in both if r.outcome_ab != r.outcome_ba]
    lc = length_controlled_win_rate(
        [r.outcome for r in records], [r.len_a for r in records], [r.len_b for r in records]
    )
    return CellStats(
        judge=judge,
        criterion=criterion,
        n=len(records),
        wins=wins,
        ties=ties,
        losses=losses,
        invalid=invalid,
        win_rate=_rate(half, valid),
        win_rate_ci=wilson_interval(half, valid),
        win_rate_excl_ties=_rate(wins, wins + losses),
        win_rate_excl_ties_ci=wilson_interval(wins, wins + losses),
        position_bias_rate=_rate(len(flips), len(both)),
        position_pairs=len(both),
        primacy=sum(r.outcome_ab == A and r.outcome_ba == B for r in flips),
        recency=sum(r.outcome_ab == B and r.outcome_ba == A for r in flips),
        lc_win_rate=lc.win_rate,
        lc_win_rate_ci=(lc.ci_low, lc.ci_high),
        lc_slope=lc.slope,
    )


def summarize(records: Iterable[Record]) -> Report:
    """Per judge × criterion statistics, plus agreement between judges per criterion."""
    records = list(records)
    report = Report()
    judges = sorted({r.judge for r in records})
    criteria = sorted({r.criterion for r in records})
    by_cell: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        by_cell.setdefault((r.judge, r.criterion), []).append(r)
    for (judge, criterion), cell in sorted(by_cell.items()):
        report.cells.append(cell_stats(judge, criterion, cell))
    for criterion in criteria:
        labels: dict[str, dict[str, str]] = {j: {} for j in judges}
        for r in records:
            if r.criterion == criterion and r.outcome != INVALID:
                labels[r.judge][r.item] = r.outcome
        pairs: dict[str, float] = {}
        for j1, j2 in combinations(judges, 2):
            common = sorted(labels[j1].keys() & labels[j2].keys())
            pairs[f"{j1}|{j2}"] = cohen_kappa([labels[j1][i] for i in common], [labels[j2][i] for i in common])
        if pairs:
            report.cohen_kappa[criterion] = pairs
        if len(judges) >= 2:
            shared = set.intersection(*(set(labels[j]) for j in judges))
            report.fleiss_kappa[criterion] = fleiss_kappa([[labels[j][i] for j in judges] for i in sorted(shared)])
    return report


def format_table(report: Report) -> str:
    """A fixed-width text table of the report, for terminals and logs."""
    head = (
        f"{'judge':<28} {'criterion':<20} {'W':>3} {'T':>3} {'L':>3} {'inv':>3} "
        f"{'win(t=½)':>8} {'95% CI':>13} {'win(¬t)':>8} {'95% CI':>13} {'LC win':>7} {'flip':>5}"
    )
    lines = [head, "-" * len(head)]

    def pct(v: float) -> str:
        return "   n/a" if math.isnan(v) else f"{100 * v:5.1f}%"

    def ci(c: tuple[float, float]) -> str:
        return f"[{100 * c[0]:4.1f},{100 * c[1]:5.1f}]"

    for c in report.cells:
        lines.append(
            f"{c.judge[:28]:<28} {c.criterion[:20]:<20} {c.wins:>3} {c.ties:>3} {c.losses:>3} {c.invalid:>3} "
            f"{pct(c.win_rate):>8} {ci(c.win_rate_ci):>13} {pct(c.win_rate_excl_ties):>8} "
            f"{ci(c.win_rate_excl_ties_ci):>13} {pct(c.lc_win_rate):>7} {pct(c.position_bias_rate):>5}"
        )
    for criterion, fk in sorted(report.fleiss_kappa.items()):
        pairs = ", ".join(
            f"{k}={'n/a' if math.isnan(v) else f'{v:.2f}'}" for k, v in report.cohen_kappa.get(criterion, {}).items()
        )
        lines.append(f"agreement {criterion}: Fleiss κ={'n/a' if math.isnan(fk) else f'{fk:.2f}'}; Cohen κ {pairs}")
    lines.append("win(t=½): ties count half; win(¬t): ties excluded; LC: length-controlled; flip: position-bias rate")
    return "\n".join(lines)
