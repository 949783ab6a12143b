"""Synthetic-to-real, as the paper: training scenes get facts derived from their words, with the detector's noise.

The paper paired real dialogue with images drawn from scene prompts; with no image model offline, a scene's
"photo" is what a detector would have said about it. The things a scene's turns name (vocabulary terms: COCO
categories and ImageNet classes) become facts, and the detector's measured noise is imitated (calibration.json,
`noise`): each named object is missed with the measured miss rate; false detections appear at the measured rate
with the labels the detector really confuses; scores are drawn from its true detections' score quantiles.
Other ImageNet terms a scene names become an image label. Real photos go through the real detector instead.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from functools import cache
from typing import Any

from vispod.common.visual_vocabulary import IMAGENET_CLASSES, coco_category, concrete_nouns, imagenet_term
from vispod.perception.settings import calibration
from vispod.v1 import common_pb2

MAX_OBJECT_KINDS = 5


@cache
def _imagenet_names() -> dict[str, str]:
    """term -> the classifier's class name (the label it would emit)."""
    return {imagenet_term(name): name for name in IMAGENET_CLASSES}


def _score(rng: random.Random, quantiles: list[float], floor: float) -> float:
    """A score drawn uniformly between two neighbouring quantiles of the true detections' scores."""
    if len(quantiles) < 2:
        return round(max(floor, 0.8), 4)
    i = rng.randrange(len(quantiles) - 1)
    return round(max(floor, rng.uniform(quantiles[i], quantiles[i + 1])), 4)


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: fine for the small means measured (under one false detection a photo).
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _instances(rng: random.Random, counts: Mapping[str, int]) -> int:
    if not counts:
        return 1
    sizes, weights = zip(*((int(k), v) for k, v in counts.items()), strict=True)
    return rng.choices(sizes, weights)[0]


def scene_facts(text: str, rng: random.Random, noise: Mapping[str, Any] | None = None) -> common_pb2.Perception:
    noise = noise if noise is not None else calibration()["noise"]
    floor = float(calibration()["objects"]["min_score"])
    facts = common_pb2.Perception()
    terms = concrete_nouns(text)
    kinds = [c for c in dict.fromkeys(coco_category(t) for t in terms) if c][:MAX_OBJECT_KINDS]
    for label in kinds:
        if rng.random() < noise["object_miss_rate"]:
            continue
        for _ in range(_instances(rng, noise["instance_counts"])):
            facts.objects.add(label=label, score=_score(rng, noise["true_score_quantiles"], floor))
    false_labels = noise["false_object_labels"]
    for _ in range(_poisson(rng, noise["false_objects_per_photo"]) if false_labels else 0):
        label = rng.choices(list(false_labels), list(false_labels.values()))[0]
        facts.objects.add(label=label, score=round(rng.uniform(floor, min(1.0, floor + 0.15)), 4))
    names = _imagenet_names()
    label = next((t for t in terms if t in names and coco_category(t) != t), None)
    if label is not None:
        low = float(calibration()["labels"]["min_score"])
        facts.labels.add(label=names[label], score=round(rng.uniform(low, max(low, 0.9)), 4))
    facts.objects.sort(key=lambda o: -o.score)
    facts.models.add(task="objects", name="synthetic-from-text", random_weights=False)
    return facts
