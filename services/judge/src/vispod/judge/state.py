"""Durable pairing state on disk: pending pairs and completed-pair markers.

Why disk: the bus commits an event's offset once its handler returns, even when the handler only
parked the event waiting for its partner. So a parked side is written here (atomically: temp
file, fsync, rename) BEFORE the handler returns; a crash after that loses nothing, and a crash
before it means the offset was not committed and Kafka redelivers the event.

Layout under the state folder: pending/<sha256(key)>.json and done/<sha256(key)>.json. Replicas of
the judge must share the folder (a ReadWriteMany volume) or the service runs as one replica
(a StatefulSet with its own volume): Kafka keys events by image set, so a partition moved to
another replica on a rebalance must find its parked sides there.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Side:
    event_id: str
    system: str
    payload_b64: str  # the DialogueGenerated event, serialized

    def payload(self) -> bytes:
        return base64.b64decode(self.payload_b64)


@dataclass
class PendingPair:
    key: str
    image_set_id: str
    pair_id: str
    created: float  # wall-clock seconds: the timeout must survive restarts
    sides: dict[str, Side] = field(default_factory=dict)
    # Kafka partition of its events (keyed by image set: both sides share it). Only the replica that owns
    # the partition touches the pair, so replicas sharing this folder never write the same pair at once.
    partition: int = -1


@dataclass
class DonePair:
    key: str
    kind: str  # judged | timeout | failed
    completed: float
    # Id of the input event whose arrival completed the pair: a redelivery of that very event
    # (its commit was lost) re-emits `output` instead of judging again.
    completing_event_id: str = ""
    output_b64: str = ""

    def output(self) -> bytes:
        return base64.b64decode(self.output_b64)


def _name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest() + ".json"


def _write_atomic(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class PairStore:
    def __init__(self, root: Path) -> None:
        self.pending_dir = Path(root) / "pending"
        self.done_dir = Path(root) / "done"
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        self.done_dir.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Serialises work on one pair within this process (across replicas, partition ownership does)."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def get_pending(self, key: str) -> PendingPair | None:
        path = self.pending_dir / _name(key)
        if not path.exists():
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["sides"] = {k: Side(**v) for k, v in doc["sides"].items()}
        return PendingPair(**doc)

    def put_pending(self, pending: PendingPair) -> None:
        _write_atomic(self.pending_dir / _name(pending.key), asdict(pending))

    def get_done(self, key: str) -> DonePair | None:
        path = self.done_dir / _name(key)
        if not path.exists():
            return None
        return DonePair(**json.loads(path.read_text(encoding="utf-8")))

    def mark_done(self, done: DonePair) -> None:
        """Writes the marker first, then drops the pending file: a crash in between leaves both,
        and the marker wins (get_done is checked before get_pending)."""
        _write_atomic(self.done_dir / _name(done.key), asdict(done))
        with contextlib.suppress(FileNotFoundError):
            (self.pending_dir / _name(done.key)).unlink()

    def pending(self) -> list[PendingPair]:
        out = []
        for path in sorted(self.pending_dir.glob("*.json")):
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                doc = json.loads(path.read_text(encoding="utf-8"))
                doc["sides"] = {k: Side(**v) for k, v in doc["sides"].items()}
                out.append(PendingPair(**doc))
        return out

    def pending_count(self) -> int:
        return sum(1 for _ in self.pending_dir.glob("*.json"))

    def prune_done(self, older_than_s: float, now: float | None = None) -> int:
        """Forgets completed pairs after the retention period (by file time: no parsing); returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for path in self.done_dir.glob("*.json"):
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > older_than_s:
                    path.unlink()
                    removed += 1
        return removed
