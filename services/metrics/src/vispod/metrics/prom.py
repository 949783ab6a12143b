"""Prometheus instruments of the metrics service. Labels come from small fixed sets; `system` is capped."""

from __future__ import annotations

import re
import threading

from prometheus_client import Counter, Histogram

OTHER = "other"
UNKNOWN = "unknown"

_RATIO = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)
_WORDS = (10, 20, 30, 40, 50, 60, 80, 100, 150, 200, 400)
_PER_1000 = (1, 2, 5, 10, 15, 20, 25, 30, 40, 60, 100)
_CLIP = (5, 10, 15, 18, 20, 22, 24, 26, 28, 30, 35, 40)

STYLE_HISTOGRAMS: dict[str, Histogram] = {
    "avg_turn_length": Histogram("vispod_metrics_avg_turn_length_words", "Mean words per speaker turn (robust)",
                                 ["system"], buckets=_WORDS),
    "switch_rate": Histogram("vispod_metrics_switch_rate_per_1000_words", "Speaker changes per 1,000 words (robust)",
                             ["system"], buckets=_PER_1000),
    "distinct_2": Histogram("vispod_metrics_distinct_2_ratio", "Unique / all word bigrams", ["system"],
                            buckets=_RATIO),
    "speaker_balance": Histogram("vispod_metrics_speaker_balance_ratio",
                                 "Normalised entropy of words per speaker", ["system"], buckets=_RATIO),
    "longest_monologue_share": Histogram("vispod_metrics_longest_monologue_share_ratio",
                                         "Longest turn / all words", ["system"], buckets=_RATIO),
    "question_rate": Histogram("vispod_metrics_question_rate_ratio", "Share of turns that ask a question",
                               ["system"], buckets=_RATIO),
    "repeated_4gram_rate": Histogram("vispod_metrics_repeated_4gram_rate_ratio", "Share of repeated word 4-grams",
                                     ["system"], buckets=_RATIO),
    "image_mention_rate": Histogram("vispod_metrics_image_mention_rate_per_1000_words",
                                    "Mentions of image/photo/picture per 1,000 words", ["system"],
                                    buckets=_PER_1000),
    "words": Histogram("vispod_metrics_dialogue_length_words", "Words spoken per dialogue", ["system"],
                       buckets=(100, 200, 400, 600, 800, 1000, 1200, 1500, 2000, 4000)),
}
# `weights` is real|random: scores from random CLIP weights must never be mistaken for real ones.
GROUNDING_HISTOGRAMS: dict[str, Histogram] = {
    "clipscore": Histogram("vispod_metrics_clipscore_score", "Whole-dialogue CLIPScore, max(100·cos, 0) of the best "
                           "window, mean over images", ["system", "weights"], buckets=_CLIP),
    "paper_clipscore": Histogram("vispod_metrics_paper_clipscore_score", "The paper's CLIPScore (first 500 chars)",
                                 ["system", "weights"], buckets=_CLIP),
    "retrieval_accuracy": Histogram("vispod_metrics_grounding_retrieval_accuracy_ratio",
                                    "Images whose best window ranks them first in their set",
                                    ["system", "weights"], buckets=_RATIO),
}
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
