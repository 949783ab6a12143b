"""Calibration of perception's thresholds, and of the detector's noise that training facts imitate.

Data: the vist-podcast-50 stories outside the evaluation split (rule: not every photo captioned; none of their
photos has a caption), never the evaluation stories. Reference: what the paper's two VLMs, which saw these
photos, name in their transcripts (vocabulary terms), per story. For each threshold the detector's story-level
label set is scored against the reference; the threshold with the best F0.5 is kept (precision counts twice:
a fact the model is told that is not in the photo does more harm than a miss). The classifier's top label the
same way. At the chosen thresholds the detector's noise is measured: the share of named objects it misses, its
false detections per photo and which labels they are, and the scores of its true detections.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vispod.common.story_folder import iter_stories
from vispod.common.visual_vocabulary import coco_category, imagenet_term, supporting_terms
from vispod.perception.classifier import ImageClassifier
from vispod.perception.detector import ObjectDetector

GRID = tuple(round(t, 2) for t in np.arange(0.20, 0.91, 0.05))
BETA = 0.5
MIN_GIVEN = 10
TRANSCRIPTS = ("qwen3-vl-32b-sporc-lora", "qwen3-vl-235b-base")


@dataclass
class PhotoRun:
    story: str
    objects: list[tuple[str, float]]          # every detection down to the floor score
    labels: list[tuple[str, float]]           # the classifier's top 5


def f_beta(precision: float, recall: float, beta: float = BETA) -> float:
    if precision <= 0 or recall <= 0:
        return 0.0
    return (1 + beta ** 2) * precision * recall / (beta ** 2 * precision + recall)


def reference_terms(texts: Sequence[str]) -> frozenset[str]:
    """The terms the transcripts name, with the COCO category of each."""
    return supporting_terms(" ".join(texts))


def object_scores(runs: list[PhotoRun], refs: dict[str, frozenset[str]], t: float) -> dict[str, float]:
    tp = fp = fn = 0
    for story, ref in refs.items():
        found = {label for r in runs if r.story == story for label, s in r.objects if s >= t}
        named = {c for c in (coco_category(term) for term in ref) if c}
        tp += len(found & named)
        fp += len(found - named)
        fn += len(named - found)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"threshold": t, "precision": round(precision, 4), "recall": round(recall, 4),
            "f_beta": round(f_beta(precision, recall), 4), "true": tp, "false": fp, "missed": fn}


def label_scores(runs: list[PhotoRun], refs: dict[str, frozenset[str]], t: float) -> dict[str, float]:
    given = right = 0
    for r in runs:
        label, score = r.labels[0]
        if score < t:
            continue
        given += 1
        right += imagenet_term(label) in refs[r.story] or coco_category(imagenet_term(label)) in refs[r.story]
    precision = right / given if given else 0.0
    recall = right / len(runs) if runs else 0.0
    return {"threshold": t, "precision": round(precision, 4), "recall": round(recall, 4),
            "f_beta": round(f_beta(precision, recall), 4), "given": given, "right": right}


def labels_in_prompt(labels: list[dict[str, float]], object_precision: float) -> bool:
    """Image labels are facts the model is told only when some threshold makes them as precise as the detector's
    objects (on enough photos to say so); otherwise they are recorded but not shown."""
    return any(row["precision"] >= object_precision and row["given"] >= MIN_GIVEN for row in labels)


def noise_model(runs: list[PhotoRun], refs: dict[str, frozenset[str]], t: float) -> dict[str, Any]:
    """How the detector errs at threshold t: per named object the chance it is missed (story level), false
    detections per photo and their labels, true detections' scores and instance counts."""
    false_labels: Counter[str] = Counter()
    true_scores: list[float] = []
    counts: Counter[int] = Counter()
    missed = named_total = 0
    for story, ref in refs.items():
        photos = [r for r in runs if r.story == story]
        named = {c for c in (coco_category(term) for term in ref) if c}
        found = {label for r in photos for label, s in r.objects if s >= t}
        missed += len(named - found)
        named_total += len(named)
        for r in photos:
            kept = [(label, s) for label, s in r.objects if s >= t]
            per_label = Counter(label for label, _ in kept)
            for label, s in kept:
                if label in named:
                    true_scores.append(s)
            for label, n in per_label.items():
                if label in named:
                    counts[n] += 1
                else:
                    false_labels[label] += 1
    photos_n = max(1, len(runs))
    quantiles = np.quantile(true_scores, [0.1, 0.25, 0.5, 0.75, 0.9]).round(4).tolist() if true_scores else []
    return {"object_miss_rate": round(missed / max(1, named_total), 4),
            "false_objects_per_photo": round(sum(false_labels.values()) / photos_n, 4),
            "false_object_labels": dict(false_labels.most_common(12)),
            "true_score_quantiles": quantiles,
            "instance_counts": {str(k): v for k, v in sorted(counts.items())}}


def run_models(stories: list, floor: float = 0.1) -> list[PhotoRun]:
    detector = ObjectDetector(floor, 100)
    classifier = ImageClassifier(0.0, 5)
    runs = []
    for story in stories:
        for path in story.images:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
            objects = [(o.label, o.score) for o in detector(rgb)]
            labels = [(lab.label, lab.score) for lab in classifier(rgb)]
            runs.append(PhotoRun(story.story_id, objects, labels))
    return runs


def calibrate(dataset: Path) -> dict[str, Any]:
    stories = [s for s in iter_stories(dataset, "story_*") if not s.fully_captioned and s.images]
    refs = {s.story_id: reference_terms([s.text(name) or "" for name in TRANSCRIPTS]) for s in stories}
    runs = run_models(stories)
    objects = [object_scores(runs, refs, t) for t in GRID]
    labels = [label_scores(runs, refs, t) for t in GRID]
    best_object = max(objects, key=lambda row: (row["f_beta"], row["threshold"]))
    best_label = max(labels, key=lambda row: (row["f_beta"], row["threshold"]))
    in_prompt = labels_in_prompt(labels, best_object["precision"])
    return {
        "what": "perception thresholds and detector noise, calibrated by `vispod perception calibrate`",
        "data": {"set": "vist-podcast-50", "rule": "stories outside the evaluation split (not every photo "
                 "captioned); never an evaluation story", "stories": sorted(refs), "photos": len(runs),
                 "reference": f"vocabulary terms named in the stories' transcripts {list(TRANSCRIPTS)} "
                              "(both models saw the photos)"},
        "criterion": f"F{BETA} of story-level label sets against the reference (precision weighs more)",
        "objects": {"min_score": best_object["threshold"], "grid": objects},
        "labels": {"min_score": best_label["threshold"], "in_prompt": in_prompt, "grid": labels,
                   "in_prompt_rule": f"shown to the text model only where a threshold reaches the detector's "
                                     f"precision ({best_object['precision']}) on at least {MIN_GIVEN} photos"},
        "text": {"min_score": 0.5, "source": "PP-OCRv4's own recognition-score default in rapidocr (no text "
                                              "reference exists in the data)"},
        "noise": noise_model(runs, refs, best_object["threshold"]),
    }


def main(dataset: Path, out: Path) -> dict[str, Any]:
    result = calibrate(dataset)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result

