"""Prometheus metrics of the judge (vispod_judge_*). Labels: judge specs (a small configured set),
criteria (fixed), outcomes and reasons (fixed) — never image-set or event ids."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram


def _per_judge(name: str, documentation: str, *labels: str) -> Counter:
    """Counter `vispod_judge_<name>_total`, labelled by judge spec and then `labels`."""
    return Counter(f"vispod_judge_{name}_total", documentation, ["judge", *labels])


REQUESTS = _per_judge("requests", "Calls to a judge backend, by result (ok, error).", "result")
REQUEST_SECONDS = Histogram(
    "vispod_judge_request_duration_seconds",
    "Duration of one judge call, retries included.",
    ["judge"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160),
)
RETRIES = _per_judge("retries", "Retried judge HTTP calls, by reason (rate_limited, server, timeout, bad_response).",
                     "reason")
TOKENS = _per_judge("tokens", "Tokens used by judges, by direction (prompt, completion).", "kind")
COST = _per_judge("cost_usd", "Cost of judge calls in USD (from the configured price table).")
VERDICTS = _per_judge("verdicts", "Debiased verdicts (both orders), by outcome (a, b, tie, invalid).",
                      "criterion", "outcome")
PARSE_FAILURES = _per_judge("parse_failures",
                            "Judge replies that were not a valid JSON verdict (before or after retry).", "final")
POSITION_FLIPS = _per_judge("position_flips", "Pairs whose verdict changed with presentation order.", "criterion")
PAIRS = Counter(
    "vispod_judge_pairs_total",
    "Kafka pairing results (judged, failed_side, timeout, duplicate, late, unpaired).",
    ["result"],
)
PENDING = Gauge("vispod_judge_pending_pairs", "Pairs waiting for their second side.")
