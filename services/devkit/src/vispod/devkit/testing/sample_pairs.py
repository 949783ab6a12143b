"""Writes a small pairs folder in the dataset builder's layout, for tests, benchmarks and smoke runs.

The images are plain generated pictures and the dialogues fixed sentences: enough to exercise the data path and
to overfit, nothing to learn from.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

INSTRUCTIONS = ("Write a Q&A-style podcast between hosts labelled Speaker 1: and Speaker 2: about the story these "
                "photos tell, in order. Do not mention images or photos.")
DIALOGUES = [
    "Speaker 1: Welcome back to the show, today we talk about a trip to the beach.\n"
    "Speaker 2: Oh I love that, the waves, the sand, the sunset over the water.",
    "Speaker 1: What a day! Did you see the cake at the birthday party?\n"
    "Speaker 2: And the kids playing with a dog in the park, the whole family was there.",
    "Speaker 1: The city street at night, lights everywhere, music from a concert.\n"
    "Speaker 2: Friends at dinner after the wedding, then a drive on the mountain road.",
]


def _picture(index: int, k: int, size: tuple[int, int]) -> Image.Image:
    img = Image.new("RGB", size, ((index * 53 + k * 31) % 256, (index * 97) % 256, (k * 71) % 256))
    draw = ImageDraw.Draw(img)
    draw.ellipse((k * 4, index % 7 * 3, size[0] // 2 + k * 4, size[1] // 2 + index % 7 * 3), fill=(250, 250, 250))
    return img


def write_sample_pairs(root: Path, n: int = 4, *, images_per_pair: int = 5, size: tuple[int, int] = (64, 48),
                       dialogue_repeat: int = 1, manifest: bool = True) -> Path:
    """Writes root/pairs.jsonl, root/images/*.png and (optionally) root/manifest.json; returns root."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        paths = []
        for k in range(images_per_pair):
            rel = f"images/p{i:04d}_{k}.png"
            _picture(i, k, size).save(root / rel)
            paths.append(rel)
        dialogue = "\n".join([DIALOGUES[i % len(DIALOGUES)]] * dialogue_repeat)
        lines.append({"id": f"pair-{i:04d}", "image": paths, "conversations": [
            {"from": "human", "value": "<image>" * images_per_pair + "\n" + INSTRUCTIONS},
            {"from": "gpt", "value": dialogue}]})
    (root / "pairs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if manifest:
        (root / "manifest.json").write_text(json.dumps({"pairs": n, "generator": "vispod.devkit.testing.sample_pairs"}))
    return root
