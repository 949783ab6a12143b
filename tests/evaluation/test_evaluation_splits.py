"""The declared vist-podcast-50 split: loading, validation, overlap refusal, and agreement with its rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vispod.evaluation.splits import (
    DEFAULT_SPLIT,
    SplitError,
    SplitOverlapError,
    check_no_overlap,
    derive_split,
    load_split,
)


def _write(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_overlap_is_refused_with_the_stories_named() -> None:
    check_no_overlap(["1", "2"], ["3"])
    with pytest.raises(SplitOverlapError, match=r"2 evaluation stories are also in the training data: 2, 3"):
        check_no_overlap(["1", "2", 3], ["2", "3"])
    with pytest.raises(SplitOverlapError, match="1 evaluation story is"):
        check_no_overlap(["7"], [7])  # ids compare as strings


def test_load_split_validates(tmp_path: Path) -> None:
    ok = load_split(_write(tmp_path / "ok.json", {"eval": [1, "2"], "train": ["3"], "rule": "by hand"}))
    assert (ok.eval, ok.train, ok.rule) == (("1", "2"), ("3",), "by hand")
    with pytest.raises(SplitOverlapError):
        load_split(_write(tmp_path / "overlap.json", {"eval": ["1"], "train": ["1"], "rule": ""}))
    for bad in ({"eval": "1", "train": []}, {"eval": [], "train": ["1"]}, {"eval": ["1", "1"], "train": []}, [1]):
        with pytest.raises(SplitError):
            load_split(_write(tmp_path / "bad.json", bad))
    with pytest.raises(SplitError, match="cannot read"):
        load_split(tmp_path / "absent.json")


def test_the_committed_split() -> None:
    split = load_split(DEFAULT_SPLIT)
    assert (len(split.eval), len(split.train)) == (20, 31)
    assert "vist_caption" in split.rule


def test_derive_split_by_the_rule(tmp_path: Path) -> None:
    for sid, captioned in (("10", 5), ("11", 4), ("12", 0)):
        folder = tmp_path / f"story_{sid}"
        folder.mkdir()
        images = [{"position": i + 1, "vist_caption": f"caption {i}" if i < captioned else None} for i in range(5)]
        (folder / "story.json").write_text(json.dumps({"vist_story_id": sid, "images": images}))
    split = derive_split(tmp_path)
    assert (split.eval, split.train) == (("10",), ("11", "12"))


def test_the_committed_split_follows_its_rule_on_the_dataset(vist_podcast_50: Path) -> None:
    derived, committed = derive_split(vist_podcast_50), load_split(DEFAULT_SPLIT)
    assert sorted(derived.eval) == sorted(committed.eval)
    assert sorted(derived.train) == sorted(committed.train)
