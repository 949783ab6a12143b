"""Images as content-addressed inputs, and an LRU of their CLIP embeddings keyed by content hash."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from vispod.common.images import PixelBudget, decode_image
from vispod.common.lru import LRU
from vispod.common.settings import ImageAccessSettings

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ImageInput:
    """An image identified by the sha256 of its content; `load` decodes it only on a cache miss."""

    key: str
    load: Callable[[], Image.Image]

    @classmethod
    def from_bytes(cls, data: bytes, limits: ImageAccessSettings | None = None, name: str = "image",
                   budget: PixelBudget | None = None) -> ImageInput:
        """Decoded lazily with the shared byte/pixel/format limits and the request's pixel budget (corrupt data
        raises ImageAccessError)."""
        limits = limits or ImageAccessSettings()
        return cls(hashlib.sha256(data).hexdigest(), lambda: decode_image(data, limits, name, budget))

    @classmethod
    def from_pil(cls, img: Image.Image) -> ImageInput:
        rgb = img.convert("RGB")
        digest = hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()
        return cls(digest, lambda: rgb)


class EmbeddingCache(LRU[str, "torch.Tensor"]):
    """Thread-safe LRU: content hash -> normalised embedding (CPU tensor), counting hits and misses."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> torch.Tensor | None:
        with self._lock:
            value = super().get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
            return value
