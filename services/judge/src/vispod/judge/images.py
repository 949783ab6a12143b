"""Bounding the images sent to judges: at most N, each downscaled and re-encoded to fit a byte cap."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from vispod.common.images import PixelBudget, decode_image
from vispod.common.settings import ImageAccessSettings
from vispod.judge.backends.base import JudgeImage


def prepare_images(raw: Sequence[bytes | Image.Image], *, max_images: int, max_side: int,
                   max_bytes: int, limits: ImageAccessSettings | None = None) -> tuple[JudgeImage, ...]:
    """First `max_images` images as JPEGs no longer than `max_side` px and no bigger than `max_bytes`. Raw bytes
    are decoded within `limits` (format allow-list, bytes, pixels per image and per call) as every service
    decodes them; decoded images came through ImageFetcher.load and its limits already."""
    limits = limits or ImageAccessSettings()
    budget = PixelBudget(limits)
    out = []
    for i, data in enumerate(list(raw)[:max_images]):
        rgb = data.convert("RGB") if isinstance(data, Image.Image) else decode_image(data, limits, f"image {i + 1}",
                                                                                     budget)
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
