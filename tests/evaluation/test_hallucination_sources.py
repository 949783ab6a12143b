"""Where unsupported object mentions come from: the breakdown reproduces the plan's measure and checks the paper's
transcripts story-wide against captions alone and captions plus the facts the systems read."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from vispod.evaluation.hallucination_sources import OUTPUT, main, mentions_of, photo_refs
from vispod.metrics.hallucination import hallucination
from vispod.v1 import common_pb2

DOG = {"objects": [{"label": "dog", "score": 0.9}]}
CAR = {"objects": [{"label": "car", "score": 0.8}]}


def test_mentions_split_into_own_photo_wrong_scene_and_nowhere_and_the_rate_is_the_metrics() -> None:
    refs = photo_refs(["a day at the park", ""], [DOG, CAR])
    turns = [("The dog chased a car past a zebra.", [0]), ("Then the car, and the dog again.", [1]),
             ("A dog, all day.", [])]
    got = mentions_of(turns, refs)
    own = got.mentions - sum(got.unsupported.values())
    assert (got.mentions, own, got.elsewhere, got.nowhere) == (6, 3, 2, 1)
    by_hand = [common_pb2.ImageRef(caption="a day at the park"), common_pb2.ImageRef()]
    for ref, facts in zip(by_hand, (DOG, CAR), strict=True):
        for o in facts["objects"]:
            ref.perception.objects.add(label=o["label"], score=o["score"])
    metric = hallucination([common_pb2.Turn(text=t, image_refs=r) for t, r in turns], by_hand)
    assert metric is not None and got.rate == pytest.approx(metric.rate) == pytest.approx(3 / 6)


def _dataset(root: Path) -> None:
    folder = root / "story_7"
    folder.mkdir(parents=True)
    (folder / "paper.txt").write_text("Speaker 1: The dog ran to the car.\nSpeaker 2: A zebra? No, a horse.\n")
    images = [{"position": i + 1, "file": None, "vist_caption": c} for i, c in enumerate(["our dog", "the road"])]
    (folder / "story.json").write_text(json.dumps({"vist_story_id": "7", "images": images,
                                                   "transcripts": {"qwen3-vl-32b-sporc-lora": "paper.txt"}}))


def test_a_run_folder_gets_its_breakdown_and_the_papers_transcripts_story_wide(tmp_path: Path, monkeypatch) -> None:
    _dataset(tmp_path / "data")
    monkeypatch.setenv("VISPOD_DATASETS_ROOT", str(tmp_path))
    (tmp_path / "data").rename(tmp_path / "vist-podcast-50")
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"system": "tuned", "story_id": "7", "status": "STATUS_OK", "facts": [DOG, CAR],
             "turns": [{"text": "A dog and a car.", "image_refs": [0]}]},
            {"system": "tuned", "story_id": "7", "status": "STATUS_FAILED", "facts": [DOG, CAR], "turns": []},
            # a system fed captions: no perception ran, its facts are null in the archive
            {"system": "captions", "story_id": "7", "status": "STATUS_OK", "facts": [None, None],
             "turns": [{"text": "Our dog, then a car.", "image_refs": [0]}]}]
    with gzip.open(run / "dialogues.jsonl.gz", "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(r) + "\n" for r in rows)
    assert main([str(run)]) == 0
    doc = json.loads((run / OUTPUT).read_text())
    assert doc["run"] == f"{tmp_path.name}/run"      # the run's own folders, never this machine's path
    tuned = doc["systems"]["tuned"]
    # the story's value is the mean of its dialogues: (1/2 + 0) / 2; the failed one is counted, as in the plan
    assert (tuned["rate_own_photos"], tuned["share_other_photo"], tuned["failed_dialogues"]) == (0.25, 0.5, 1)
    assert (doc["systems"]["captions"]["rate_own_photos"], doc["systems"]["captions"]["share_nowhere"]) == (0.5, 0.5)
    [paper] = doc["paper_transcripts_story_wide"].values()
    # dog (caption), car (facts only), zebra and horse (nowhere): 3 of 4 unsupported by captions, 2 with the facts
    assert paper["captions_only"]["rate_story_wide"] == 0.75 and paper["captions_and_facts"]["rate_story_wide"] == 0.5
