"""Prometheus metrics of the generator (labels from small fixed sets only)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# status: ok | failed (malformed output, adapter unavailable, engine refused) | invalid (bad request)
#         | unavailable (engine unreachable or overloaded after retries)
REQUESTS = Counter("vispod_generator_requests_total", "Generation requests by backend and outcome",
                   ["backend", "status"])
LATENCY = Histogram("vispod_generator_request_duration_seconds", "Time from request to result", ["backend"],
                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300, 600))
TOKENS = Counter("vispod_generator_tokens_total", "Tokens processed", ["backend", "kind"])  # kind: prompt|completion
IN_FLIGHT = Gauge("vispod_generator_in_flight_requests", "Requests being generated now", ["backend"])
ATTEMPTS = Counter("vispod_generator_attempts_total", "Model calls, retries after malformed output included",
                   ["backend", "outcome"])  # outcome: ok | malformed
REPAIRS = Counter("vispod_generator_repairs_total", "Results whose model output needed a repair", ["backend"])
