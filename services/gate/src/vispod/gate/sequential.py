"""Wald's sequential probability ratio test on paired signs: is the canary worse than the active adapter?

Each pair is one canary dialogue and one active dialogue of live traffic, scored by the same metric; the sign says
which is worse (ties say nothing and are not counted). If the canary is no worse, "canary worse" has probability
p0 = 0.5 in every pair, whatever the metric's distribution; if it is worse by the margin that matters, p1 > 0.5.
After n pairs with w "canary worse":

    LLR = w·ln(p1/p0) + (n − w)·ln((1 − p1)/(1 − p0))

and the test stops at the first crossing of ln((1 − β)/α) (worse: roll back) or ln(β/(1 − α)) (no worse). Wald's
bounds keep the error rates at or below the stated ones: P(roll back | no worse) ≤ α and
P(accept | worse with p ≥ p1) ≤ β, for any number of looks. Between p0 and p1 lies the indifference zone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

P0 = 0.5
WORSE, NO_WORSE, CONTINUE = "worse", "no_worse", "continue"


@dataclass(frozen=True)
class SignTest:
    alpha: float = 0.05     # false rollback: stopping "worse" when the canary is no worse
    beta: float = 0.10      # false promotion: stopping "no worse" when P(canary worse) ≥ p1
    p1: float = 0.70        # the smallest "canary worse" probability that must be caught

    def __post_init__(self) -> None:
        if not (0 < self.alpha < 0.5 and 0 < self.beta < 0.5 and P0 < self.p1 < 1):
            raise ValueError("need 0 < alpha, beta < 0.5 and 0.5 < p1 < 1")

    @property
    def upper(self) -> float:
        return math.log((1 - self.beta) / self.alpha)

    @property
    def lower(self) -> float:
        return math.log(self.beta / (1 - self.alpha))

    def step(self, canary_worse: bool) -> float:
        """The LLR increment of one pair."""
        return math.log(self.p1 / P0) if canary_worse else math.log((1 - self.p1) / (1 - P0))

    def state(self, llr: float) -> str:
        if llr >= self.upper:
            return WORSE
        if llr <= self.lower:
            return NO_WORSE
        return CONTINUE

    def split(self, k: int) -> SignTest:
        """The same test for one of k metrics: α/k each (Bonferroni), so k tests together keep α."""
        return SignTest(self.alpha / k, self.beta, self.p1)
