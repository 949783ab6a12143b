"""What an SRE scrapes (Prometheus on the metrics port) and reads (one JSON line per step on stdout)."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from prometheus_client import Counter, Gauge, Histogram

LOSS = Gauge("vispod_trainer_loss", "Mean token loss of the last optimizer step")
EVAL_LOSS = Gauge("vispod_trainer_eval_loss", "Mean token loss on the held-out split at the last evaluation")
LEARNING_RATE = Gauge("vispod_trainer_learning_rate", "Learning rate of the last optimizer step")
STEPS = Counter("vispod_trainer_steps_total", "Optimizer steps taken")
TOTAL_STEPS = Gauge("vispod_trainer_planned_steps", "Optimizer steps this run will take in all")
SAMPLES = Counter("vispod_trainer_samples_total", "Pairs trained on")
TOKENS = Counter("vispod_trainer_tokens_total", "Tokens (prompt, images and dialogue) trained on")
SAMPLES_PER_SECOND = Gauge("vispod_trainer_samples_per_second", "Throughput of the last optimizer step")
STEP_SECONDS = Histogram("vispod_trainer_step_duration_seconds", "Wall time of one optimizer step",
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
SKIPPED = Counter("vispod_trainer_skipped_samples_total", "Pairs left out of training, by reason", ["reason"])
TRUNCATED = Counter("vispod_trainer_truncated_samples_total", "Pairs whose dialogue tail was cut to max_length")
CHECKPOINTS = Counter("vispod_trainer_checkpoints_total", "Checkpoints written")
PUBLISHED = Counter("vispod_trainer_adapters_published_total", "Adapters published, by outcome", ["outcome"])
WORLD_SIZE = Gauge("vispod_trainer_world_size", "Processes (ranks) training together; 1 without torchrun")
# Rank 0 publishes for all: every rank's throughput reaches it in the step's one collective. Label values are
# bounded by the world size.
RANK_TOKENS_PER_SECOND = Gauge("vispod_trainer_rank_tokens_per_second",
                               "Tokens per second of each rank in the last optimizer step (a slow rank stands out)",
                               ["rank"])
LAST_STEP_TIME = Gauge("vispod_trainer_last_step_timestamp_seconds", "Unix time of the last optimizer step "
                       "(alert when it stops moving)")

for _reason in ("too_long", "prompt_too_long"):
    SKIPPED.labels(_reason)
for _outcome in ("ok", "error"):
    PUBLISHED.labels(_outcome)


class Progress:
    """One JSON object per line on stdout, flushed at once so `kubectl logs -f` shows it live."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def emit(self, event: str, **fields: Any) -> None:
        self.stream.write(json.dumps({"event": event, **fields}) + "\n")
        self.stream.flush()


class NullProgress(Progress):
    """What ranks other than 0 report on stdout: nothing (rank 0 speaks for the job)."""

    def emit(self, event: str, **fields: Any) -> None:
        return None
