"""Prometheus metrics of the synth service (names follow vispod_<subsystem>_<name>_<unit>)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# source: grpc | kafka | local (in-process dataset builds).
IMAGES = Counter("vispod_synth_images_total", "Images drawn; rate() gives images per second.", ["source"])
REQUESTS = Counter(
    "vispod_synth_requests_total", "Synthesis requests by outcome (ok | invalid | failed).", ["source", "outcome"]
)
REQUEST_SECONDS = Histogram(
    "vispod_synth_request_duration_seconds",
    "Wall time of one synthesis request, queueing included.",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
BATCH_SECONDS = Histogram(
    "vispod_synth_batch_duration_seconds",
    "Wall time of one pipeline call (one batch of prompts).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
QUEUE_DEPTH = Gauge("vispod_synth_queue_depth", "Requests waiting for or holding the pipeline.")
