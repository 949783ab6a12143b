"""Prometheus metrics of the judge (vispod_judge_*). Labels: judge specs (a small configured set),
criteria (fixed), outcomes and reasons (fixed) — never image-set or event ids."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "vispod_judge_requests_total", "Calls to a judge backend, by result (ok, error).", ["judge", "result"]
)
REQUEST_SECONDS = Histogram(
    "vispod_judge_request_duration_seconds",
    "Duration of one judge call, retries included.",
    ["judge"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160),
)
RETRIES = Counter(
    "vispod_judge_retries_total",
    "Retried judge HTTP calls, by reason (rate_limited, server, timeout, bad_response).",
    ["judge", "reason"],
)
TOKENS = Counter(
    "vispod_judge_tokens_total", "Tokens used by judges, by direction (prompt, completion).", ["judge", "kind"]
)
COST = Counter(
    "vispod_judge_cost_usd_total", "Cost of judge calls in USD (from the configured price table).", ["judge"]
)
VERDICTS = Counter(
    "vispod_judge_verdicts_total",
    "Debiased verdicts (both orders), by outcome (a, b, tie, invalid).",
    ["judge", "criterion", "outcome"],
)
PARSE_FAILURES = Counter(
    "vispod_judge_parse_failures_total",
    "Judge replies that were not a valid JSON verdict (before or after retry).",
    ["judge", "final"],
)
POSITION_FLIPS = Counter(
    "vispod_judge_position_flips_total", "Pairs whose verdict changed with presentation order.", ["judge", "criterion"]
)
PAIRS = Counter(
    "vispod_judge_pairs_total",
    "Kafka pairing results (judged, failed_side, timeout, duplicate, late, unpaired).",
    ["result"],
)
PENDING = Gauge("vispod_judge_pending_pairs", "Pairs waiting for their second side.")
