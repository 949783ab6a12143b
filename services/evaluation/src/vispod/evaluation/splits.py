"""The declared train/eval split of vist-podcast-50, and the check that no evaluation story leaks into training.

The split file is package data (`vist-podcast-50-split.json` beside this module: `{"eval": [...], "train": [...],
"rule": "..."}`); the stories themselves are read from the shared dataset at run time, never copied.
`derive_split` recomputes the split from the dataset by its rule, so a test can check the file against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vispod.common.story_folder import STORY_FILE, iter_stories

DEFAULT_SPLIT = Path(__file__).with_name("vist-podcast-50-split.json")
RULE = ("eval: the stories whose 5 photos all carry a VIST caption (vist_caption non-null in story.json); "
        "train: every other story (no captions), whose paper transcripts may be used for training")


class SplitError(ValueError):
    """The split file is malformed."""


class SplitOverlapError(SplitError):
    """A story is in both the training and the evaluation split."""


@dataclass(frozen=True)
class Split:
    eval: tuple[str, ...]
    train: tuple[str, ...]
    rule: str

    def as_json(self) -> dict[str, object]:
        return {"eval": list(self.eval), "train": list(self.train), "rule": self.rule}


def check_no_overlap(train_ids: Iterable[str], eval_ids: Iterable[str]) -> None:
    """Raise SplitOverlapError naming every story that is in both (ids compared as strings)."""
    both = sorted({str(s) for s in train_ids} & {str(s) for s in eval_ids})
    if both:
        raise SplitOverlapError(f"{len(both)} evaluation stor{'y is' if len(both) == 1 else 'ies are'} also in the "
                                f"training data: {', '.join(both)}; evaluation stories must never be trained on")


def _ids(doc: dict, key: str, path: Path) -> tuple[str, ...]:
    ids = doc.get(key)
    if not isinstance(ids, list) or not all(isinstance(s, str | int) for s in ids):
        raise SplitError(f"{path}: {key!r} must be a list of story ids")
    out = tuple(str(s) for s in ids)
    if len(set(out)) != len(out):
        raise SplitError(f"{path}: {key!r} lists a story twice")
    return out


def load_split(path: Path = DEFAULT_SPLIT) -> Split:
    """Read and validate a split file; overlapping splits raise SplitOverlapError."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SplitError(f"cannot read split file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise SplitError(f"{path}: expected an object with 'eval', 'train' and 'rule'")
    split = Split(_ids(doc, "eval", path), _ids(doc, "train", path), str(doc.get("rule", "")))
    if not split.eval:
        raise SplitError(f"{path}: the eval split is empty")
    check_no_overlap(split.train, split.eval)
    return split


def derive_split(dataset: Path) -> Split:
    """The split by RULE, from a vist-podcast-50-style folder (`story_<id>/story.json`)."""
    eval_ids, train_ids = [], []
    for story in sorted(iter_stories(dataset, "story_*"), key=lambda s: s.folder.name):
        if not (story.folder / STORY_FILE).is_file():
            continue
        captioned = len(story.entries) == 5 and all(e.caption for e in story.entries)
        (eval_ids if captioned else train_ids).append(story.story_id)
    return Split(tuple(eval_ids), tuple(train_ids), RULE)
