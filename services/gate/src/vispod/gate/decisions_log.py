"""The gate's decisions log: one JSON object per line, appended, never rewritten.

It is also the gate's memory for idempotency: a redelivered AdapterPublished (same event id), or a second event
for an adapter already decided (versions are immutable), re-emits the recorded decision instead of evaluating
again — an evaluation is expensive and need not come out the same twice.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from vispod.common.statistics import finite


class DecisionsLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, entry: dict) -> None:
        line = json.dumps(finite(entry), sort_keys=True, allow_nan=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())

    def entries(self) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        with self._lock:
            text = self.path.read_text(encoding="utf-8")
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line after a crash: skip it
                continue
        return out

    def previous(self, adapter_id: str, event_id: str) -> dict | None:
        """The decision to re-use: same event (any outcome), or a completed evaluation of the same adapter."""
        for entry in reversed(self.entries()):
            if entry.get("event_id") == event_id:
                return entry
            if entry.get("adapter_id") == adapter_id and not entry.get("failed"):
                return entry
        return None

