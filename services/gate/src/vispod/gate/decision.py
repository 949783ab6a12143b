"""The promotion rule, as pure functions over verdicts and grounding scores.

Outcomes are from the candidate's point of view ("win", "loss", "tie", "invalid"); the candidate is side A of
every comparison. The story is the statistical unit: several judges on one story are not independent samples,
so each story's verdicts are first averaged into one score in [0, 1], and n is the number of stories with a
valid verdict. Invalid verdicts never enter a denominator. Ties count as configured:
- half: a tie is half a win over all valid verdicts (the judge service's headline rate);
- loss: a tie is not a win (the strictest: the candidate must beat, not match);
- exclude: wins / (wins + losses); a story judged all ties has no say.
The interval is Wilson's 95% score interval over stories (fractional successes — ties as half, judges who
disagree — are accepted as the normal approximation they are).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from vispod.common.statistics import wilson_interval
from vispod.gate.settings import TiePolicy

WIN, LOSS, TIE, INVALID = "win", "loss", "tie", "invalid"
PROMOTE, REJECT = "promote", "reject"


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


def _successes(wins: int, ties: int, losses: int, tie_policy: TiePolicy) -> tuple[float, int]:
    """(successes, valid count) of a set of verdicts under a tie policy."""
    if tie_policy == "half":
        return wins + 0.5 * ties, wins + ties + losses
    if tie_policy == "loss":
        return float(wins), wins + ties + losses
    if tie_policy == "exclude":
        return float(wins), wins + losses
    raise ValueError(f"unknown tie policy {tie_policy!r}")


def win_rate(outcomes: Sequence[str], tie_policy: TiePolicy = "half") -> WinRate:
    """Win rate over independent verdicts (one per story, e.g. one judge's)."""
    return story_win_rate([[o] for o in outcomes], tie_policy)


def story_win_rate(by_story: Sequence[Sequence[str]], tie_policy: TiePolicy = "half") -> WinRate:
    """Win rate with the story as the unit: each story's verdicts (any number of judges) become one score."""
    wins = ties = losses = invalid = 0
    scores: list[float] = []
    for outcomes in by_story:
        w, t, lo = outcomes.count(WIN), outcomes.count(TIE), outcomes.count(LOSS)
        wins, ties, losses, invalid = wins + w, ties + t, losses + lo, invalid + len(outcomes) - w - t - lo
        successes, valid = _successes(w, t, lo, tie_policy)
        if valid:
            scores.append(successes / valid)
    n = len(scores)
    lower, upper = wilson_interval(sum(scores), n)
    return WinRate(wins, ties, losses, invalid, float(n), sum(scores) / n if n else 0.0, lower, upper)


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


def decide(outcomes_by_story: Sequence[Sequence[str]], grounding_candidate: Sequence[float],
           grounding_active: Sequence[float], criteria: GateCriteria) -> Decision:
    """Promote only if the win rate's lower bound is above the threshold and grounding holds up.

    `outcomes_by_story` holds each story's verdicts (one per judge); `grounding_*` are per-story mean
    CLIPScores for the stories both sides were scored on (same order).
    """
    wr = story_win_rate(outcomes_by_story, criteria.tie_policy)
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
    wins = (f"{criteria.criterion} win rate {wr.rate:.3f} (95% CI {wr.lower:.3f}–{wr.upper:.3f}, n={wr.n:g} stories, "
            f"ties={criteria.tie_policy})")
    if wr.lower <= criteria.min_win_rate_lower:
        return Decision(REJECT, f"{wins}: lower bound not above {criteria.min_win_rate_lower}", evidence)
    if not grounding_candidate:
        return Decision(REJECT, f"{wins}, but grounding was not measured", evidence)
    if evidence["grounding_delta"] < -criteria.max_grounding_drop:
        return Decision(REJECT, f"{wins}, but mean CLIPScore fell by {-evidence['grounding_delta']:.2f} "
                                f"(> {criteria.max_grounding_drop})", evidence)
    return Decision(PROMOTE, f"{wins}; CLIPScore change {evidence['grounding_delta']:+.2f}", evidence)
