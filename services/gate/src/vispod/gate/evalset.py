"""Evaluation sets: folders of stories, as in shared/datasets/vist-podcast-50 (the format is read by
vispod.common.story_folder), and a small built-in synthetic set."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from vispod.common.story_folder import Story, iter_stories, read_story

__all__ = ["EvalSetError", "Story", "load_eval_set", "load_story", "write_builtin_set"]

class EvalSetError(ValueError):
    """The folder is not an evaluation set (nothing usable in it)."""


def load_story(folder: Path) -> Story:
    return read_story(folder)


def load_eval_set(root: Path, max_stories: int = 0) -> list[Story]:
    """The stories under `root` in natural name order (at most `max_stories` when > 0)."""
    root = Path(root)
    if not root.is_dir():
        raise EvalSetError(f"evaluation set {root} does not exist")
    stories = [s for s in iter_stories(root) if s.images or s.transcripts]
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
