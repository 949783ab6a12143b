"""The story-folder format, read in one place (the layout of shared/datasets/vist-podcast-50).

A story folder `story_<id>/` holds `story.json` — `vist_story_id`, `images[]` with `position`, `file` (null
when the photo is missing), `vist_caption` (null when VIST has none) and `flickr_photo_id`; `transcripts`
{system: file}; `complete` — and the photos. Folders without a story.json also work: photos are
`image_*`-style files in natural name order, captions empty, and every `<system>.txt` is a transcript.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vispod.v1 import common_pb2

STORY_FILE = "story.json"
IMAGE_MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


class NotAStoryFolder(ValueError):
    """The folder holds neither a story.json nor photos."""


@dataclass(frozen=True)
class StoryImage:
    position: int
    path: Path | None  # None: the photo is missing from the folder
    caption: str | None  # None: VIST has no caption for it
    flickr_photo_id: str = ""


@dataclass
class Story:
    story_id: str
    folder: Path
    entries: tuple[StoryImage, ...]  # every photo the story names, in story order, missing ones included
    transcripts: dict[str, Path] = field(default_factory=dict)
    complete: bool = True
    meta: dict = field(default_factory=dict)  # story.json as read ({} without one)

    @property
    def present(self) -> list[StoryImage]:
        return [e for e in self.entries if e.path is not None]

    @property
    def images(self) -> list[Path]:
        """The photos in the folder, in story order."""
        return [e.path for e in self.present]  # type: ignore[misc]

    @property
    def captions(self) -> list[str]:
        """One caption per photo in `images` ("" where there is none)."""
        return [e.caption or "" for e in self.present]

    @property
    def fully_captioned(self) -> bool:
        """Every photo the story names is present and captioned."""
        return bool(self.entries) and all(e.path is not None and e.caption for e in self.entries)

    def text(self, system: str) -> str | None:
        path = self.transcripts.get(system)
        return path.read_text(encoding="utf-8") if path is not None and path.is_file() else None

    def image_refs(self) -> list[common_pb2.ImageRef]:
        return [common_pb2.ImageRef(uri=p.resolve().as_uri(), caption=c, mime_type=IMAGE_MIME.get(p.suffix.lower(), ""))
                for p, c in zip(self.images, self.captions, strict=True)]


def natural_key(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _from_story_json(folder: Path) -> Story:
    doc = json.loads((folder / STORY_FILE).read_text(encoding="utf-8"))
    entries = []
    for img in sorted(doc.get("images") or [], key=lambda i: i.get("position", 0)):
        name = img.get("file")
        path = folder / name if name and (folder / name).is_file() else None
        entries.append(StoryImage(int(img.get("position", 0)), path, img.get("vist_caption"),
                                  str(img.get("flickr_photo_id") or "")))
    transcripts = {system: folder / name for system, name in (doc.get("transcripts") or {}).items()}
    for extra in folder.glob("*.txt"):  # transcripts generated later (vispod eval --generate) sit beside them
        transcripts.setdefault(extra.stem, extra)
    story_id = str(doc.get("vist_story_id") or folder.name.removeprefix("story_"))
    complete = bool(doc.get("complete", all(e.path for e in entries)))
    return Story(story_id, folder, tuple(entries), transcripts, complete, doc)


def _from_files(folder: Path) -> Story:
    photos = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_MIME), key=lambda p: natural_key(p.name))
    entries = tuple(StoryImage(i + 1, p, None) for i, p in enumerate(photos))
    transcripts = {p.stem: p for p in sorted(folder.glob("*.txt"))}
    return Story(folder.name.removeprefix("story_"), folder, entries, transcripts)


def read_story(folder: Path) -> Story:
    """One story folder (with or without story.json)."""
    folder = Path(folder)
    if (folder / STORY_FILE).is_file():
        return _from_story_json(folder)
    if not folder.is_dir():
        raise NotAStoryFolder(f"{folder} is not a folder")
    return _from_files(folder)


def iter_stories(root: Path, pattern: str = "*") -> Iterator[Story]:
    """The story folders under `root` matching `pattern`, in natural name order (hidden folders skipped)."""
    folders = sorted((p for p in Path(root).glob(pattern) if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: natural_key(p.name))
    for folder in folders:
        yield read_story(folder)
