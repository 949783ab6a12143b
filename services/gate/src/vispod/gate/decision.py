"""The promotion rule, as pure functions over verdicts and grounding scores.

Outcomes are from the candidate's point of view ("win", "loss", "tie", "invalid"); the candidate is side A of
every comparison. All configured judges' verdicts on the gate's criterion are pooled: n = stories × judges.
Invalid verdicts never enter the denominator. Ties count as configured:
- half: a tie is half a win over all valid verdicts (the judge service's headline rate);
- loss: a tie is not a win (the strictest: the candidate must beat, not match);
- exclude: wins / (wins + losses).
The interval is Wilson's 95% score interval (fractional successes with ties as half are accepted as the
normal approximation they are).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from vispod.gate.settings import TiePolicy

WIN, LOSS, TIE, INVALID = "win", "loss", "tie", "invalid"
Z95 = 1.959963984540054
PROMOTE, REJECT = "promote", "reject"


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when there is no observation."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class WinRate:
    wins: int
    ties: int
    losses: int
    invalid: int
    n: float
    rate: float
    lower: float
    upper: float


def win_rate(outcomes: Sequence[str], tie_policy: TiePolicy = "half") -> WinRate:
    wins, ties, losses = outcomes.count(WIN), outcomes.count(TIE), outcomes.count(LOSS)
    invalid = len(outcomes) - wins - ties - losses
    if tie_policy == "half":
        successes, n = wins + 0.5 * ties, wins + ties + losses
    elif tie_policy == "loss":
        successes, n = wins, wins + ties + losses
    elif tie_policy == "exclude":
        successes, n = wins, wins + losses
    else:
        raise ValueError(f"unknown tie policy {tie_policy!r}")
    lower, upper = wilson_interval(successes, n)
    return WinRate(wins, ties, losses, invalid, float(n), successes / n if n else 0.0, lower, upper)


@dataclass(frozen=True)
class GateCriteria:
    criterion: str = "naturalness"
    tie_policy: TiePolicy = "half"
    min_win_rate_lower: float = 0.5
    # CLIPScore points (torchmetrics scale, 0..100) the candidate's mean may fall below the active one's.
    max_grounding_drop: float = 1.0


@dataclass(frozen=True)
class Decision:
    decision: str  # promote | reject
    reason: str
    evidence: dict[str, float] = field(default_factory=dict)
    failed: bool = False  # the evaluation itself failed: no promotion, reason recorded

    @property
    def promote(self) -> bool:
        return self.decision == PROMOTE


def failed_evaluation(reason: str) -> Decision:
    return Decision(REJECT, f"evaluation failed: {reason}", {"n": 0.0}, failed=True)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def decide(outcomes: Sequence[str], grounding_candidate: Sequence[float], grounding_active: Sequence[float],
           criteria: GateCriteria) -> Decision:
    """Promote only if the win rate's lower bound is above the threshold and grounding holds up.

    `grounding_*` are per-story mean CLIPScores for the stories both sides were scored on (same order).
    """
    wr = win_rate(list(outcomes), criteria.tie_policy)
    evidence = {"win_rate": wr.rate, "win_rate_lower": wr.lower, "win_rate_upper": wr.upper, "n": wr.n,
                "wins": float(wr.wins), "ties": float(wr.ties), "losses": float(wr.losses),
                "invalid": float(wr.invalid)}
    if len(grounding_candidate) != len(grounding_active):
        raise ValueError("grounding scores must be paired story by story")
    if grounding_candidate:
        delta = _mean(grounding_candidate) - _mean(grounding_active)
        evidence.update(grounding_delta=delta, grounding_candidate=_mean(grounding_candidate),
                        grounding_active=_mean(grounding_active))
    if wr.n == 0:
        return Decision(REJECT, f"no valid {criteria.criterion} verdicts ({wr.invalid} invalid)", evidence)
    wins = (f"{criteria.criterion} win rate {wr.rate:.3f} (95% CI {wr.lower:.3f}–{wr.upper:.3f}, n={wr.n:g}, "
            f"ties={criteria.tie_policy})")
    if wr.lower <= criteria.min_win_rate_lower:
        return Decision(REJECT, f"{wins}: lower bound not above {criteria.min_win_rate_lower}", evidence)
    if not grounding_candidate:
        return Decision(REJECT, f"{wins}, but grounding was not measured", evidence)
    if evidence["grounding_delta"] < -criteria.max_grounding_drop:
        return Decision(REJECT, f"{wins}, but mean CLIPScore fell by {-evidence['grounding_delta']:.2f} "
                                f"(> {criteria.max_grounding_drop})", evidence)
    return Decision(PROMOTE, f"{wins}; CLIPScore change {evidence['grounding_delta']:+.2f}", evidence)
