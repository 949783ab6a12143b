"""Prometheus instruments of the metrics service. Labels come from small fixed sets; `system` is capped.

One instrument per metric field of MetricsComputed (vispod.common.metric_fields reads them from the proto
descriptors): a histogram per number, a counter per yes/no flag. A new proto metric gets its instrument here
without an edit."""

from __future__ import annotations

import re
import threading

from prometheus_client import Counter, Histogram

from vispod.common.metric_fields import MetricField, sections

OTHER = "other"
UNKNOWN = "unknown"

_RATIO = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)
_WORDS = (10, 20, 30, 40, 50, 60, 80, 100, 150, 200, 400)
_PER_1000 = (1, 2, 5, 10, 15, 20, 25, 30, 40, 60, 100)
_CLIP = (5, 10, 15, 18, 20, 22, 24, 26, 28, 30, 35, 40)

_COSINE = (-0.2, -0.1, -0.05, 0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0)
_COUNT = (0, 1, 2, 3, 5, 8, 10, 15, 20, 30, 50, 100)
_BUCKETS = {"ratio": _RATIO, "words": (*_WORDS, 600, 800, 1000, 1500, 2000, 4000), "per_1000_words": _PER_1000,
            "score": _CLIP, "cosine": _COSINE}
# Sections whose instruments predate the derivation keep their unprefixed names (dashboards read them).
_UNPREFIXED = ("style", "grounding")
# Observed per system; grounding also per `weights` (real|random): scores from random CLIP weights must never be
# mistaken for real ones. paper_style is the paper's reading of the same text: not observed.
OBSERVED = ("style", "grounding", "aligned_grounding", "hallucination", "format", "naturalness")


def instrument_name(field: MetricField) -> str:
    """vispod_metrics_[<section>_]<field>[_<unit>] (the unit is not repeated when the name already ends with it)."""
    prefix = "" if field.section in _UNPREFIXED else f"{field.section}_"
    stem = f"vispod_metrics_{prefix}{field.name}"
    if field.is_flag:
        return f"{stem}_total"
    named = field.name == field.unit or field.name.endswith(f"_{field.unit}")
    return stem if named else f"{stem}_{field.unit}"


def _instrument(field: MetricField) -> Histogram | Counter:
    labels = ["system", "weights"] if field.section == "grounding" else ["system"]
    what = f"{field.section}.{field.name} of MetricsComputed ({field.unit}; {field.better} is better)"
    if field.is_flag:
        return Counter(instrument_name(field).removesuffix("_total"), f"Dialogues with {what} set", labels)
    return Histogram(instrument_name(field), f"Per dialogue: {what}", labels,
                     buckets=_BUCKETS.get(field.unit, _COUNT))


# section -> field name -> instrument, for every metric field of the observed sections (from the descriptors).
INSTRUMENTS: dict[str, dict[str, Histogram | Counter]] = {
    section: {f.name: _instrument(f) for f in sections()[section]} for section in OBSERVED}
SCORING_SECONDS = Histogram("vispod_metrics_scoring_seconds", "Time to score one dialogue", ["path", "stage"],
                            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
IMAGES_EMBEDDED = Counter("vispod_metrics_images_embedded_total", "Images run through the CLIP image encoder")
CACHE_HITS = Counter("vispod_metrics_image_cache_hits_total", "Image embeddings served from the content-hash cache")
CACHE_MISSES = Counter("vispod_metrics_image_cache_misses_total", "Image embeddings not in the cache")
SCORED = Counter("vispod_metrics_dialogues_scored_total", "Dialogues scored", ["path", "outcome"])
FAILED_DIALOGUES = Counter("vispod_metrics_failed_dialogues_total",
                           "DialogueGenerated events with status FAILED (nothing to score)", ["system"])

_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_.:@/+-]")


class BoundedLabels:
    """Maps free-form values (e.g. system names) to at most `cap` label values; later newcomers become 'other'."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        value = _LABEL_CHARS.sub("_", value.strip())[:64]
        if not value:
            return UNKNOWN
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self.cap:
                self._seen.add(value)
                return value
        return OTHER
