"""Evaluation sets: folders of stories, as in shared/datasets/vist-podcast-50.

A story folder `story_<id>/` holds `story.json` (`vist_story_id`, `images[]` with `position`, `file` — null when
the photo is missing — and `vist_caption`, `transcripts` {system: file}) and the photos. Folders without a
story.json also work: photos are `image_*.{jpg,jpeg,png}` in name order and every `<system>.txt` is a transcript.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from vispod.v1 import common_pb2

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


class EvalSetError(ValueError):
    """The folder is not an evaluation set (nothing usable in it)."""


@dataclass
class Story:
    story_id: str
    folder: Path
    images: list[Path]
    captions: list[str]
    transcripts: dict[str, Path] = field(default_factory=dict)

    def text(self, system: str) -> str | None:
        path = self.transcripts.get(system)
        return path.read_text(encoding="utf-8") if path is not None and path.is_file() else None

    def image_refs(self) -> list[common_pb2.ImageRef]:
        return [common_pb2.ImageRef(uri=p.resolve().as_uri(), caption=c, mime_type=_MIME.get(p.suffix.lower(), ""))
                for p, c in zip(self.images, self.captions, strict=True)]


def _natural_key(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _from_story_json(folder: Path) -> Story:
    doc = json.loads((folder / "story.json").read_text(encoding="utf-8"))
    images, captions = [], []
    for entry in sorted(doc.get("images", []), key=lambda e: e.get("position", 0)):
        name = entry.get("file")
        if name and (folder / name).is_file():
            images.append(folder / name)
            captions.append(entry.get("vist_caption") or "")
    transcripts = {system: folder / name for system, name in (doc.get("transcripts") or {}).items()}
    for extra in folder.glob("*.txt"):  # transcripts generated later (vispod eval --generate) sit beside them
        transcripts.setdefault(extra.stem, extra)
    story_id = str(doc.get("vist_story_id") or folder.name.removeprefix("story_"))
    return Story(story_id, folder, images, captions, transcripts)


def _from_files(folder: Path) -> Story:
    images = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                    key=lambda p: _natural_key(p.name))
    transcripts = {p.stem: p for p in sorted(folder.glob("*.txt"))}
    return Story(folder.name.removeprefix("story_"), folder, images, [""] * len(images), transcripts)


def load_story(folder: Path) -> Story:
    return _from_story_json(folder) if (folder / "story.json").is_file() else _from_files(folder)


def load_eval_set(root: Path, max_stories: int = 0) -> list[Story]:
    """The stories under `root` in natural name order (at most `max_stories` when > 0)."""
    root = Path(root)
    if not root.is_dir():
        raise EvalSetError(f"evaluation set {root} does not exist")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: _natural_key(p.name))
    stories = [load_story(f) for f in folders]
    stories = [s for s in stories if s.images or s.transcripts]
    if not stories:
        raise EvalSetError(f"{root} holds no story folders (story_<id>/ with photos or transcripts)")
    return stories[:max_stories] if max_stories else stories


BUILTIN_CAPTIONS = (
    ("we drove to the beach early and the waves were huge.", "the kids built a sand castle by the water.",
     "a dog chased a ball across the sand.", "grandma unpacked a picnic with lemonade.",
     "the sun went down behind the pier."),
    ("the whole family met at the park for the birthday.", "dad lit the candles on a chocolate cake.",
     "the children ran a sack race on the grass.", "everyone posed for a group portrait.",
     "we walked home under the street lights."),
    ("our hike started at the trailhead in the fog.", "a waterfall roared beside the path.",
     "we stopped for sandwiches on a big rock.", "the view from the summit went on for miles.",
     "tired but happy, we reached the car at dusk."),
)


def write_builtin_set(root: Path, stories: int = 3, size: tuple[int, int] = (96, 72)) -> Path:
    """Writes a small synthetic evaluation set (PIL images + captions); used by tests and as a smoke-test set."""
    from PIL import Image, ImageDraw

    root = Path(root)
    for s in range(stories):
        captions = BUILTIN_CAPTIONS[s % len(BUILTIN_CAPTIONS)]
        folder = root / f"story_{9000 + s}"
        folder.mkdir(parents=True, exist_ok=True)
        entries = []
        for i, caption in enumerate(captions):
            img = Image.new("RGB", size, ((60 * s + 40 * i) % 256, (90 + 30 * i) % 256, (200 - 25 * i) % 256))
            draw = ImageDraw.Draw(img)
            draw.ellipse((10 + 5 * i, 10, 50 + 5 * i, 50), fill=((255 - 40 * i) % 256, 220, 40 * s % 256))
            name = f"image_{i + 1}.png"
            img.save(folder / name)
            entries.append({"position": i + 1, "file": name, "vist_caption": caption})
        doc = {"vist_story_id": str(9000 + s), "images": entries, "transcripts": {}, "complete": True}
        (folder / "story.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return root
