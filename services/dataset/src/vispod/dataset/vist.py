"""VIST (Visual Storytelling) readers: the official SIS/DII JSON, and vist-podcast-50 as an evaluation set.

- `load_vist_json(path)`: `*.story-in-sequence.json` (SIS) or `*.description-in-isolation.json`
  (DII) → stories of 5 photos in story order, each photo with its caption (the lower-cased `text`)
  and, from the `images` table, its URL. SIS groups by `story_id` and orders by
  `worker_arranged_photo_order`; DII (descriptions of single photos) groups by `story_id` when
  present, else by album, ordered by `photo_order_in_story`, in consecutive runs of 5.
  Stories without exactly 5 usable photos are counted in the report by reason.
- `sample_stories(stories, k, seed)`: seeded sampling, independent of input order.
- `load_eval_stories(root)`: the folder layout of `vist-podcast-50` (`story_<id>/story.json`,
  `image_N.jpg`, transcripts) — image paths, captions and the paper's transcripts per story.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vispod.common.settings import DatasetSettings
from vispod.common.story_folder import STORY_FILE, StoryImage, iter_stories

STORY_LENGTH = 5


class DatasetAbsent(FileNotFoundError):
    """A data set the code was pointed at is not there; the message says where it looked."""


@dataclass(frozen=True)
class VistPhoto:
    photo_id: str
    order: int
    caption: str
    original_text: str = ""
    url: str = ""
    path: Path | None = None  # a local copy, when an image folder was given and holds it


@dataclass(frozen=True)
class VistStory:
    story_id: str
    album_id: str
    photos: tuple[VistPhoto, ...]

    @property
    def captions(self) -> list[str]:
        return [p.caption for p in self.photos]


@dataclass
class VistReport:
    annotations: int = 0
    stories: int = 0
    malformed: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "annotations": self.annotations,
            "stories": self.stories,
            "malformed": dict(sorted(self.malformed.items())),
        }


def _local_image(image_dir: Path | None, photo_id: str) -> Path | None:
    if image_dir is None:
        return None
    for suffix in (".jpg", ".jpeg", ".png", ".gif"):
        candidate = image_dir / f"{photo_id}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def load_vist_json(
    path: Path | str, image_dir: Path | str | None = None, report: VistReport | None = None
) -> list[VistStory]:
    """Stories from a SIS or DII file, sorted by story id."""
    path = Path(path)
    if not path.is_file():
        raise DatasetAbsent(f"VIST annotation file not found: {path}")
    report = report if report is not None else VistReport()
    data = json.loads(path.read_text(encoding="utf-8"))
    images = {str(img.get("id")): img for img in data.get("images", []) if isinstance(img, dict)}
    folder = Path(image_dir) if image_dir else None
    groups: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for entry in data.get("annotations", []):
        ann = entry[0] if isinstance(entry, list) and entry else entry
        if not isinstance(ann, dict):
            report.malformed["annotation_not_an_object"] += 1
            continue
        report.annotations += 1
        order = ann.get("worker_arranged_photo_order", ann.get("photo_order_in_story"))
        photo = ann.get("photo_flickr_id")
        text = ann.get("text")
        if not isinstance(order, int | str) or not str(order).lstrip("-").isdigit():
            report.malformed["annotation_bad_order"] += 1
            continue
        if not photo or not isinstance(text, str):
            report.malformed["annotation_missing_photo_or_text"] += 1
            continue
        story = ann.get("story_id")
        album = str(ann.get("album_id", ""))
        groups[(str(story) if story is not None else "", album)].append((int(order), ann))
    stories: list[VistStory] = []
    for (story_id, album), anns in groups.items():
        anns.sort(key=lambda a: (a[0], str(a[1].get("photo_flickr_id"))))
        runs = [anns] if story_id else [anns[i : i + STORY_LENGTH] for i in range(0, len(anns), STORY_LENGTH)]
        for n, run in enumerate(runs):
            if len(run) != STORY_LENGTH:
                report.malformed["story_not_5_photos"] += 1
                continue
            photos = tuple(
                VistPhoto(
                    photo_id=str(a["photo_flickr_id"]),
                    order=i,
                    caption=a["text"].strip(),
                    original_text=str(a.get("original_text", "")),
                    url=str(images.get(str(a["photo_flickr_id"]), {}).get("url_o", "") or ""),
                    path=_local_image(folder, str(a["photo_flickr_id"])),
                )
                for i, (_, a) in enumerate(run)
            )
            stories.append(VistStory(story_id or f"{album}/{n}", album, photos))
    stories.sort(key=lambda s: (len(s.story_id), s.story_id))
    report.stories = len(stories)
    return stories


def sample_stories(stories: list[VistStory], k: int, seed: int) -> list[VistStory]:
    """k stories chosen by `seed`; the same whatever order the stories came in."""
    ordered = sorted(stories, key=lambda s: (len(s.story_id), s.story_id))
    return random.Random(seed).sample(ordered, min(k, len(ordered)))


# One type for a story's photo: the story-folder reader's (vispod.common.story_folder).
EvalImage = StoryImage


@dataclass(frozen=True)
class EvalStory:
    story_id: str
    folder: Path
    images: tuple[EvalImage, ...]
    transcripts: dict[str, str]
    complete: bool

    @property
    def image_paths(self) -> list[Path]:
        return [i.path for i in self.images if i.path is not None]


DEFAULT_EVAL_ROOT = DatasetSettings().vist_podcast_50  # VISPOD_DATASETS_ROOT


def load_eval_stories(root: Path | str = DEFAULT_EVAL_ROOT, complete_only: bool = False) -> list[EvalStory]:
    """Stories of a vist-podcast-50-style folder, sorted by folder name. Raises DatasetAbsent when it is missing."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetAbsent(
            f"evaluation set not found at {root}: vist-podcast-50 is not bundled with vispod; "
            "point the loader at your copy (folders story_<id>/ with story.json)"
        )
    found = [story for story in iter_stories(root, "story_*") if (story.folder / STORY_FILE).is_file()]
    if not found:
        raise DatasetAbsent(f"no story_*/story.json folders under {root}")
    return [EvalStory(story.story_id, story.folder, story.entries, _texts(story.transcripts), story.complete)
            for story in sorted(found, key=lambda s: s.folder.name) if story.complete or not complete_only]


def _texts(transcripts: dict[str, Path]) -> dict[str, str]:
    return {name: path.read_text(encoding="utf-8") for name, path in transcripts.items() if path.is_file()}
