"""adapter-sync's Prometheus metrics (label values from fixed sets; alerts in deploy/prometheus)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ROUNDS = Counter("vispod_adaptersync_rounds_total", "Sync rounds by outcome", ["outcome"])
REJECTED = Counter("vispod_adaptersync_rejected_total", "Adapter versions the store rejected (never loaded)")
HELD = Gauge("vispod_adaptersync_held_adapters", "Adapter versions the engine must hold (lifecycle state)")
LAST_SUCCESS = Gauge("vispod_adaptersync_last_success_timestamp_seconds",
                     "Unix time of the last round that read the lifecycle and the store")

for _outcome in ("ok", "store_unavailable", "lifecycle_unavailable", "engine_unreachable"):
    ROUNDS.labels(_outcome)
