"""An example photo story the project makes itself (fresh machines, tests, the demo without VIST).

Real photos bundled with scikit-image when it is installed, else drawn scenes; written in the
layout of the VIST story folders (image_N.jpg + story.json) so every tool reads both alike.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

# (scikit-image sample, caption) in story order.
STORY = [
    ("astronaut", "the astronaut posed for one last portrait before the mission."),
    ("rocket", "the rocket stood on the launch pad, ready to go."),
    ("coffee", "back home we celebrated the launch with a cup of coffee."),
    ("chelsea", "even the cat seemed to follow the news all afternoon."),
    ("hubble_deep_field", "that night the sky was full of distant galaxies."),
]


def _photo(name: str, index: int) -> tuple[Image.Image, bool]:
    try:
        import skimage.data  # optional: scikit-image (requirements/dev.txt) ships the photos; a drawing otherwise

        return Image.fromarray(getattr(skimage.data, name)()).convert("RGB"), True
    except Exception:
        img = Image.new("RGB", (480, 320), (30 + 40 * index, 60, 120))
        draw = ImageDraw.Draw(img)
        draw.ellipse((160, 80, 320, 240), fill=(230, 200, 80))
        draw.text((10, 10), name, fill=(255, 255, 255))
        return img, False


def write_example_story(out: Path) -> Path:
    """Writes out/image_1.jpg … image_5.jpg and out/story.json; returns out."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images = []
    for i, (name, caption) in enumerate(STORY, start=1):
        img, real = _photo(name, i)
        img.thumbnail((768, 768))
        file = f"image_{i}.jpg"
        img.save(out / file, "JPEG", quality=85)
        images.append({"position": i, "file": file, "vist_caption": caption, "source": f"skimage.data.{name}"
                       if real else "drawn"})
    story = {"vist_story_id": "example-space-day", "images": images, "transcripts": {}}
    (out / "story.json").write_text(json.dumps(story, indent=2))
    return out
