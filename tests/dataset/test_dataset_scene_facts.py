"""Synthetic training facts: the things a scene's words name, with the detector's measured noise."""

from __future__ import annotations

import random

from vispod.dataset.scene_facts import scene_facts

TEXT = "We took the dog and two kids to the beach, where a sailboat passed and grandpa ate a pizza."
NO_NOISE = {"object_miss_rate": 0.0, "false_objects_per_photo": 0.0, "false_object_labels": {},
            "true_score_quantiles": [0.5, 0.7, 0.9], "instance_counts": {"1": 1}}


def test_named_things_become_detector_labels() -> None:
    facts = scene_facts(TEXT, random.Random(1), NO_NOISE)
    assert {o.label for o in facts.objects} == {"dog", "person", "boat", "pizza"}
    assert all(0.45 <= o.score <= 0.9 for o in facts.objects)
    assert [m.name for m in facts.models] == ["synthetic-from-text"]


def test_misses_follow_the_measured_rate() -> None:
    noisy = {**NO_NOISE, "object_miss_rate": 0.5}
    kept = [len(scene_facts(TEXT, random.Random(seed), noisy).objects) for seed in range(400)]
    assert 1.6 < sum(kept) / len(kept) < 2.4          # 4 kinds, half missed


def test_false_detections_use_the_detectors_confusions() -> None:
    noisy = {**NO_NOISE, "false_objects_per_photo": 1.0, "false_object_labels": {"chair": 3, "tie": 1}}
    extra = [o.label for seed in range(300) for o in scene_facts("A quiet afternoon.", random.Random(seed),
                                                                  noisy).objects]
    assert 250 < len(extra) < 350 and set(extra) == {"chair", "tie"} and extra.count("chair") > extra.count("tie")


def test_same_seed_same_facts() -> None:
    assert scene_facts(TEXT, random.Random(7)) == scene_facts(TEXT, random.Random(7))
