"""Deterministic canary routing: the same routing key always lands on the same side of the split."""

from __future__ import annotations

import hashlib


def canary_bucket(canary_id: str, routing_key: str) -> float:
    """A uniform number in [0, 1) from the canary id and the routing key (e.g. the image set id).

    Salting with the canary id gives each canary its own sample of traffic instead of always the same keys.
    """
    digest = hashlib.sha256(f"{canary_id}\x00{routing_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def routes_to_canary(canary_id: str, share: float, routing_key: str) -> bool:
    return share > 0 and canary_bucket(canary_id, routing_key) < share
