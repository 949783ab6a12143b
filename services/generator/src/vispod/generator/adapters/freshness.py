"""Replay protection for signed lifecycle commands.

A signature proves who decided, not when: a command copied off the topic and published again later would
verify. The signed document includes the adapter id, the target state and `changed_at` (lifecycle_signing), so:
- stale: a command whose Kafka record was appended more than `max_age_s` away from its signed time is a replay
  (the lifecycle topic stamps records with the broker's append time, which a producer cannot choose);
- replayed: per adapter, a command signed before the last one applied is refused, and so is the very same
  command again under another event id: a copy (a redelivery keeps its event id; the bus drops ids it handled).
All are refused with the reason (the consumer dead-letters them). The topic is replayed whole at start, in
order and with its original record times, so a restarted pod re-applies its history and refuses the same replays.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from vispod.v1 import events_pb2


class StaleCommand(Exception):
    """A replayed, stale or out-of-order lifecycle command (the message is the reason)."""


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


class CommandClock:
    def __init__(self, max_age_s: float = 900.0) -> None:
        if max_age_s <= 0:
            raise ValueError("max_age_s must be > 0")
        self.max_age_s = max_age_s
        self._last: dict[str, tuple[int, str]] = {}   # adapter id -> (signed ns, signature) of the last applied
        self._lock = threading.Lock()

    def check(self, msg: events_pb2.AdapterLifecycleChanged, record_ms: int) -> None:
        """Raises StaleCommand with the reason unless the command may be applied. `record_ms`: the Kafka record's
        timestamp (< 0: not from Kafka)."""
        if not msg.HasField("changed_at"):
            raise StaleCommand("lifecycle command without a signed changed_at: its age cannot be checked")
        signed_ns = msg.changed_at.ToNanoseconds()
        if record_ms >= 0:
            age_s = (record_ms * 1_000_000 - signed_ns) / 1e9
            if abs(age_s) > self.max_age_s:
                raise StaleCommand(f"stale lifecycle command for {msg.adapter_id}: signed at {_iso(signed_ns)}, "
                                   f"appended to the topic {age_s:+.0f} s from then (limit ±{self.max_age_s:g} s): "
                                   "a replay")
        with self._lock:
            last = self._last.get(msg.adapter_id)
        if last is not None:
            if last[1] == msg.signature.get("signature", ""):
                raise StaleCommand(f"replayed lifecycle command for {msg.adapter_id}: this very command (signed at "
                                   f"{_iso(signed_ns)}) was applied already")
            if signed_ns < last[0]:
                raise StaleCommand(f"replayed or out-of-order lifecycle command for {msg.adapter_id}: signed at "
                                   f"{_iso(signed_ns)}, before the last one applied (signed at {_iso(last[0])})")

    def applied(self, msg: events_pb2.AdapterLifecycleChanged) -> None:
        with self._lock:
            last = self._last.get(msg.adapter_id)
            signed_ns = msg.changed_at.ToNanoseconds()
            if last is None or signed_ns >= last[0]:
                self._last[msg.adapter_id] = (signed_ns, msg.signature.get("signature", ""))
