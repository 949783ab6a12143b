"""Bounding the images sent to judges: at most N, each downscaled and re-encoded to fit a byte cap."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

from PIL import Image

from vispod.judge.backends.base import JudgeImage

# Decoding is bounded before any resize: a hostile file cannot claim a huge canvas.
MAX_SOURCE_PIXELS = 40_000_000


def _rgb(data: bytes | Image.Image) -> Image.Image:
    if isinstance(data, Image.Image):  # already decoded within the access limits (ImageFetcher.load)
        return data.convert("RGB")
    with Image.open(io.BytesIO(data)) as img:
        if img.width * img.height > MAX_SOURCE_PIXELS:
            raise ValueError(f"image of {img.width}x{img.height} px is too large")
        return img.convert("RGB")


def prepare_images(raw: Sequence[bytes | Image.Image], *, max_images: int, max_side: int,
                   max_bytes: int) -> tuple[JudgeImage, ...]:
    """First `max_images` images as JPEGs no longer than `max_side` px and no bigger than `max_bytes`."""
    out = []
    for data in list(raw)[:max_images]:
        rgb = _rgb(data)
        rgb.thumbnail((max_side, max_side))
        for quality in (85, 70, 55, 40):
            buf = io.BytesIO()
            rgb.save(buf, format="JPEG", quality=quality)
            if buf.tell() <= max_bytes:
                break
            if quality == 40:
                rgb.thumbnail((rgb.width // 2, rgb.height // 2))
                buf = io.BytesIO()
                rgb.save(buf, format="JPEG", quality=40)
        out.append(JudgeImage(mime="image/jpeg", data=buf.getvalue()))
    return tuple(out)


def b64(image: JudgeImage) -> str:
    return base64.b64encode(image.data).decode("ascii")


def data_url(image: JudgeImage) -> str:
    return f"data:{image.mime};base64,{b64(image)}"
