"""Calibration arithmetic on made-up detector runs, and the committed calibration's own consistency."""

from __future__ import annotations

from vispod.perception.calibrate import (
    PhotoRun,
    f_beta,
    label_scores,
    labels_in_prompt,
    noise_model,
    object_scores,
    reference_terms,
)
from vispod.perception.settings import PerceptionSettings, calibration

REFS = {"s1": reference_terms(["Two dogs ran by the old bus."]), "s2": reference_terms(["A cup of tea."])}
RUNS = [PhotoRun("s1", [("dog", 0.9), ("dog", 0.5), ("bus", 0.3), ("chair", 0.4)], [("seashore", 0.6)]),
        PhotoRun("s2", [("cup", 0.8), ("person", 0.35)], [("espresso", 0.3)])]


def test_story_level_precision_and_recall() -> None:
    row = object_scores(RUNS, REFS, 0.35)
    # found {dog, chair} in s1 (bus below), {cup, person} in s2; named {dog, bus} and {cup}
    assert (row["true"], row["false"], row["missed"]) == (2, 2, 1)
    assert row["precision"] == 0.5 and row["recall"] == round(2 / 3, 4)
    assert row["f_beta"] == round(f_beta(0.5, 2 / 3), 4)


def test_a_label_counts_when_the_reference_names_it_or_its_category() -> None:
    row = label_scores(RUNS, {"s1": REFS["s1"], "s2": reference_terms(["an espresso"])}, 0.2)
    assert (row["given"], row["right"]) == (2, 1)


def test_labels_are_told_only_when_as_precise_as_objects() -> None:
    grid = [{"precision": 0.7, "given": 12}, {"precision": 0.9, "given": 3}]
    assert labels_in_prompt(grid, 0.6) and not labels_in_prompt(grid, 0.8)


def test_noise_is_measured_at_the_threshold() -> None:
    noise = noise_model(RUNS, REFS, 0.35)
    assert noise["object_miss_rate"] == round(1 / 3, 4)          # the bus was missed
    assert noise["false_objects_per_photo"] == 1.0                 # chair, person over 2 photos
    assert noise["false_object_labels"] == {"chair": 1, "person": 1}
    assert noise["instance_counts"] == {"1": 1, "2": 1}            # cup once, dog twice


def test_settings_default_to_the_committed_calibration() -> None:
    cal, s = calibration(), PerceptionSettings()
    assert s.object_min_score == cal["objects"]["min_score"] and s.label_min_score == cal["labels"]["min_score"]
    chosen = max(cal["objects"]["grid"], key=lambda r: (r["f_beta"], r["threshold"]))
    assert chosen["threshold"] == cal["objects"]["min_score"]
    assert "eval" not in " ".join(cal["data"]["stories"]) and cal["data"]["photos"] > 100
