"""The gate's Prometheus metrics (label values from fixed sets)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DECISIONS = Counter("vispod_gate_decisions_total", "Gate decisions on published adapters", ["decision"])
EVALUATION_SECONDS = Histogram("vispod_gate_evaluation_seconds", "Time to evaluate one candidate adapter",
                               buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600))
FAILED_EVALUATIONS = Counter("vispod_gate_failed_evaluations_total",
                             "Evaluations that could not complete (no promotion; reason in the decisions log)")
APPLY_FAILURES = Counter("vispod_gate_apply_failures_total",
                         "UpdateAdapter calls that failed (the lifecycle event still carries the decision)")

CANARY_STEPS = Counter("vispod_gate_canary_steps_total",
                       "Canary steps the gate took: put on canary, promoted or rolled back on live metrics", ["step"])
CANARY_SAMPLES = Gauge("vispod_gate_canary_samples", "Metrics samples of the watched canary, by side", ["side"])
CANARY_LLR = Gauge("vispod_gate_canary_log_likelihood_ratio",
                   "Sign test of the watched canary per metric (> 0 leans to worse; rollback/promotion bounds in the "
                   "gate's log)", ["metric"])

for _step in ("canary", "promote", "rollback"):
    CANARY_STEPS.labels(_step)
for _side in ("canary", "active"):
    CANARY_SAMPLES.labels(_side)
for _decision in ("promote", "reject"):
    DECISIONS.labels(_decision)
