"""What serving reads: an immutable routing snapshot, replaced whole on every change, and the canary split.

The split is deterministic: the same routing key (the image-set id) always lands on the same side, so an
image set sent again is written by the same adapter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from vispod.generator.adapters.state import RegistryState
from vispod.generator.adapters.version import BASE_MODEL, AdapterVersion

_REJECTED = "REJECTED"


def canary_bucket(canary_id: str, routing_key: str) -> float:
    """A uniform number in [0, 1) from the canary id and the routing key (e.g. the image set id).

    Salting with the canary id gives each canary its own sample of traffic instead of always the same keys.
    """
    digest = hashlib.sha256(f"{canary_id}\x00{routing_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def routes_to_canary(canary_id: str, share: float, routing_key: str) -> bool:
    return share > 0 and canary_bucket(canary_id, routing_key) < share


@dataclass(frozen=True)
class RoutingSnapshot:
    """Never mutated: readers take the current one without a lock."""

    active: str | None = None
    canary: str | None = None
    canary_share: float = 0.0
    versions: Mapping[str, AdapterVersion] = field(default_factory=lambda: MappingProxyType({}))  # all but REJECTED

    def choose(self, requested: str, routing_key: str) -> tuple[str | None, str]:
        """(adapter id or None for the base model, route): `requested` by id, "" for the default (canary
        share by routing key, else active), "base" for the base model."""
        if requested == BASE_MODEL:
            return None, "base"
        if requested:
            return requested, "explicit"
        if self.canary and routes_to_canary(self.canary, self.canary_share, routing_key):
            return self.canary, "canary"
        if self.active:
            return self.active, "active"
        return None, "base"

    @property
    def live(self) -> set[str]:
        """Adapters default traffic may reach (active, canary)."""
        return {a for a in (self.active, self.canary) if a}


def snapshot_of(state: RegistryState) -> RoutingSnapshot:
    versions = {r.adapter_id: AdapterVersion(r.adapter_id, Path(r.local_path), r.base_model_id)
                for r in state.adapters.values() if r.state != _REJECTED}
    share = state.adapters[state.canary].canary_share if state.canary else 0.0
    return RoutingSnapshot(active=state.active, canary=state.canary, canary_share=share,
                           versions=MappingProxyType(versions))
