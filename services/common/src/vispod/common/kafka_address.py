"""Which broker a command talks to when not told: --bootstrap, else VISPOD_KAFKA_BOOTSTRAP, else the record
a local broker left in the cache folder (VISPOD_CACHE, default ~/.cache/vispod).

The developer kit writes those records (`vispod up` → STACK_RECORD, `vispod kafka up` → BROKER_RECORD);
the runtime only reads them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CACHE = Path(os.environ.get("VISPOD_CACHE", Path.home() / ".cache" / "vispod"))
STACK_RECORD = CACHE / "up.json"
BROKER_RECORD = CACHE / "kafka-up.json"


def bootstrap_from(arg: str | None) -> str:
    """--bootstrap, else VISPOD_KAFKA_BOOTSTRAP, else the broker `vispod up` / `vispod kafka up` started."""
    if arg:
        return arg
    if os.environ.get("VISPOD_KAFKA_BOOTSTRAP"):
        return os.environ["VISPOD_KAFKA_BOOTSTRAP"]
    for record in (STACK_RECORD, BROKER_RECORD):
        if record.exists():
            return str(json.loads(record.read_text())["bootstrap"])
    raise SystemExit("no broker: pass --bootstrap, set VISPOD_KAFKA_BOOTSTRAP, or run `vispod up`")
