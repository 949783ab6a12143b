"""Prometheus metrics of the adapter lifecycle (vispod_generator_adapter_*); labels from fixed sets only."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STATES = ("CANDIDATE", "CANARY", "ACTIVE", "RETIRED", "REJECTED")
ROUTES = ("base", "active", "canary", "explicit")

ADAPTER_STATE = Gauge("vispod_generator_adapter_state", "Adapters in each lifecycle state", ["state"])
LOAD_FAILURES = Counter("vispod_generator_adapter_load_failures_total",
                        "Adapters rejected or not loadable, by reason", ["reason"])
EVENTS_SKIPPED = Counter("vispod_generator_adapter_events_skipped_total",
                         "AdapterPublished events announcing another base model (another generator pool's adapters), "
                         "skipped without a download; not failures", ["reason"])
LIFECYCLE_CHANGES = Counter("vispod_generator_adapter_lifecycle_changes_total",
                            "Adapter state changes, by new state", ["state"])
CANARY_SHARE = Gauge("vispod_generator_adapter_canary_share", "Share of traffic routed to the canary adapter")
HELD_UNSERVABLE = Gauge("vispod_generator_adapter_held_unservable",
                        "Adapters the lifecycle holds (active, canary, previous active, candidates) that the engine "
                        "does not serve now: vLLM's adapter-sync or TGI's rollout behind or failing")
RESOLUTIONS = Counter("vispod_generator_adapter_resolutions_total",
                      "Requests routed to the base model, the active or canary adapter, or one named explicitly",
                      ["route"])
FETCH_SECONDS = Histogram("vispod_generator_adapter_fetch_seconds", "Fetching and verifying one adapter artifact",
                          buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300))
COMMANDS_OBEYED = Counter("vispod_generator_adapter_commands_obeyed_total",
                          "Signed lifecycle commands obeyed, by signing identity", ["identity"])
COMMANDS_REFUSED = Counter("vispod_generator_adapter_commands_refused_total",
                           "Lifecycle commands dead-lettered as unauthorised (unsigned, bad signature, identity)",
                           ["reason"])
SWAP_SECONDS = Histogram("vispod_generator_adapter_swap_seconds",
                         "Local backend: wait for in-flight requests plus switching (and loading) an adapter",
                         buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30))

for _s in STATES:
    ADAPTER_STATE.labels(_s)
for _r in ROUTES:
    RESOLUTIONS.labels(_r)
for _i in ("gate", "admin"):
    COMMANDS_OBEYED.labels(_i)
for _r in ("signature", "identity"):
    COMMANDS_REFUSED.labels(_r)
EVENTS_SKIPPED.labels("other_base_model")
