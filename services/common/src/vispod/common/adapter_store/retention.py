"""Which adapter versions an engine holds: decided by lifecycle state, one rule for vLLM's sync and TGI's rollout.

Pinned, never evicted: the ACTIVE adapter (default traffic), the CANARY (its share of default traffic) and the
previous ACTIVE (what a rollback returns to). Besides those, at most `candidate_slots` CANDIDATE versions, the
most recently registered first: the gate evaluates a candidate only once an engine holds it, so the newest
candidates are the ones worth a slot. RETIRED versions other than the rollback target, REJECTED ones and versions
the lifecycle does not know (published, not yet verified and registered) take no slot. So an engine holds at most
3 + `candidate_slots` versions, and no number of new or rejected candidates can push the active one out.

The lifecycle's truth is the generator's registry (replayed from the compacted lifecycle topic); engines read it
as `LifecycleView`, from the generator's ListAdapters or from the registry itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

ACTIVE, CANARY, CANDIDATE = "ACTIVE", "CANARY", "CANDIDATE"
DEFAULT_CANDIDATE_SLOTS = 1
MAX_CANDIDATE_SLOTS = 8


@dataclass(frozen=True)
class LifecycleView:
    """adapter id -> state (CANDIDATE | CANARY | ACTIVE | RETIRED | REJECTED), in registration order."""

    states: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    previous_active: str = ""


def held_adapters(view: LifecycleView, candidate_slots: int = DEFAULT_CANDIDATE_SLOTS) -> tuple[str, ...]:
    """The versions an engine must hold, pinned ones first (active, canary, previous active), then the newest
    candidates; nothing twice."""
    if not 0 <= candidate_slots <= MAX_CANDIDATE_SLOTS:
        raise ValueError(f"candidate_slots must be in 0..{MAX_CANDIDATE_SLOTS}, got {candidate_slots}")
    states = view.states
    pinned = [a for a, s in states.items() if s == ACTIVE] + [a for a, s in states.items() if s == CANARY]
    if view.previous_active and view.previous_active in states and view.previous_active not in pinned:
        pinned.append(view.previous_active)
    candidates = [a for a, s in states.items() if s == CANDIDATE][::-1][:candidate_slots]
    return tuple(pinned + [c for c in candidates if c not in pinned])
