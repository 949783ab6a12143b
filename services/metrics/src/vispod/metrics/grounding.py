"""Visual grounding of a dialogue: CLIPScore that reads the whole dialogue, and the paper's measure beside it.

- whole dialogue: windows of at most 77 CLIP tokens (text_windows.py), every image against every window;
  per image the best window (max) and the average (mean); clipscore = mean over images of the best window on
  torchmetrics' scale max(100·cos, 0), clipscore_hessel = 2.5·max(cos, 0) with the same pairing.
- retrieval accuracy: an image counts when its best window ranks it first among the set's images (and, for the
  distractor variant, among the set's images plus images of other sets).
- paper: the first 500 characters (CLIP then cuts at 77 tokens) against each image, torchmetrics' aggregation
  max(mean(100·cos), 0). Identical for any two dialogues that open alike: it measures almost nothing.

Image embeddings are cached by content hash; windows and images are encoded in batches under inference mode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from vispod.metrics.clip_model import RANDOM_WEIGHTS_NOTE, ClipBundle
from vispod.metrics.image_cache import EmbeddingCache, ImageInput
from vispod.metrics.text_windows import Window, make_windows, window_tokens
from vispod.v1 import common_pb2

PAPER_CHARS = 500
PROTO_FIELDS = tuple(common_pb2.GroundingMetrics.DESCRIPTOR.fields_by_name)


@dataclass
class GroundingResult:
    clipscore: float
    clipscore_hessel: float
    paper_clipscore: float
    per_image_max: list[float]
    per_image_mean: list[float]
    retrieval_accuracy: float
    retrieval_accuracy_distractors: float
    num_windows: int
    clip_model: str
    random_weights: bool
    # bookkeeping for metrics and benchmarks, not part of the proto
    images_embedded: int = 0
    cache_hits: int = 0
    seconds: float = 0.0
    windows: list[Window] = field(default_factory=list, repr=False)
    similarity: torch.Tensor | None = field(default=None, repr=False)  # cos, (images, windows)

    def _proto_fields(self) -> dict[str, object]:
        """The fields GroundingMetrics carries (the proto names them), by name."""
        return {name: getattr(self, name) for name in PROTO_FIELDS}

    def to_proto(self) -> common_pb2.GroundingMetrics:
        return common_pb2.GroundingMetrics(**self._proto_fields())

    def as_dict(self) -> dict[str, object]:
        data = self._proto_fields()
        if self.random_weights:
            data["note"] = RANDOM_WEIGHTS_NOTE
        return data


def torchmetrics_scale(cos: torch.Tensor) -> torch.Tensor:
    return torch.clamp(100.0 * cos, min=0.0)


def hessel_scale(cos: torch.Tensor) -> torch.Tensor:
    return 2.5 * torch.clamp(cos, min=0.0)


def retrieval_hits(sim_set: torch.Tensor, sim_pool: torch.Tensor) -> float:
    """Share of set images i whose best window w ranks image i first in `sim_pool` (rows: set images first)."""
    best_window = sim_set.argmax(dim=1)
    ranked_first = sim_pool[:, best_window].argmax(dim=0)
    return (ranked_first == torch.arange(sim_set.shape[0])).float().mean().item()


class GroundingScorer:
    def __init__(
        self,
        clip: ClipBundle,
        *,
        cache_size: int = 512,
        text_batch_size: int = 64,
        image_batch_size: int = 16,
    ) -> None:
        self.clip = clip
        self.cache = EmbeddingCache(cache_size)
        self.text_batch_size = text_batch_size
        self.image_batch_size = image_batch_size
        self._model_lock = threading.Lock()  # one forward at a time: threads would only fight for the cores
        tok = clip.tokenizer
        self._sot = int(tok.sot_token_id)
        self._eot = int(tok.eot_token_id)

    @property
    def random_weights(self) -> bool:
        return self.clip.random_weights

    # -- encoders -------------------------------------------------------------------------------------------
    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Normalised text embeddings of (n, 77) token ids, batched."""
        out = []
        with self._model_lock, torch.inference_mode():
            for start in range(0, tokens.shape[0], self.text_batch_size):
                emb = self.clip.model.encode_text(tokens[start : start + self.text_batch_size])
                out.append(torch.nn.functional.normalize(emb.float(), dim=-1))
        return torch.cat(out) if out else torch.empty(0)

    def embed_images(self, images: Sequence[ImageInput]) -> tuple[torch.Tensor, int, int]:
        """Normalised embeddings in input order, plus (images embedded now, cache hits)."""
        found: dict[str, torch.Tensor] = {}
        todo: dict[str, ImageInput] = {}
        hits = 0
        for img in images:
            if img.key in found or img.key in todo:
                continue
            cached = self.cache.get(img.key)
            if cached is not None:
                found[img.key] = cached
                hits += 1
            else:
                todo[img.key] = img
        pending = list(todo.values())
        for start in range(0, len(pending), self.image_batch_size):
            batch = pending[start : start + self.image_batch_size]
            pixels = torch.stack([self.clip.preprocess(img.load()) for img in batch])
            with self._model_lock, torch.inference_mode():
                emb = torch.nn.functional.normalize(self.clip.model.encode_image(pixels).float(), dim=-1)
            for img, row in zip(batch, emb, strict=True):
                row = row.clone()
                found[img.key] = row
                self.cache.put(img.key, row)
        if not images:
            return torch.empty(0), 0, 0
        return torch.stack([found[img.key] for img in images]), len(pending), hits

    def windows(self, text: str) -> list[Window]:
        return make_windows(text, self.clip.tokenizer, self.clip.context_length)

    # -- scoring --------------------------------------------------------------------------------------------
    def score(
        self,
        speech: str,
        images: Sequence[ImageInput],
        *,
        transcript: str | None = None,
        distractors: Sequence[ImageInput] = (),
    ) -> GroundingResult:
        """`speech`: the words spoken (windowed); `transcript`: the raw text the paper's measure reads."""
        if not images:
            raise ValueError("grounding needs at least one image")
        t0 = time.perf_counter()
        windows = self.windows(speech)
        if not windows:
            raise ValueError("no text to score")
        all_images = [*images, *distractors]
        img_emb, embedded, hits = self.embed_images(all_images)
        n = len(images)
        paper_text = (transcript if transcript is not None else speech)[:PAPER_CHARS]
        tokens = torch.cat(
            [
                window_tokens(windows, self._sot, self._eot, self.clip.context_length),
                self.clip.tokenizer([paper_text]),  # the paper's way: cut at 77 tokens
            ]
        )
        text_emb = self.encode_tokens(tokens)
        win_emb, paper_emb = text_emb[:-1], text_emb[-1]
        sim_pool = img_emb @ win_emb.T  # (images + distractors, windows)
        sim = sim_pool[:n]
        best = sim.max(dim=1).values
        paper_cos = img_emb[:n] @ paper_emb
        return GroundingResult(
            clipscore=torchmetrics_scale(best).mean().item(),
            clipscore_hessel=hessel_scale(best).mean().item(),
            paper_clipscore=max(100.0 * paper_cos.mean().item(), 0.0),
            per_image_max=torchmetrics_scale(best).tolist(),
            per_image_mean=torchmetrics_scale(sim).mean(dim=1).tolist(),
            retrieval_accuracy=retrieval_hits(sim, sim),
            retrieval_accuracy_distractors=retrieval_hits(sim, sim_pool) if distractors else 0.0,
            num_windows=len(windows),
            clip_model=self.clip.name,
            random_weights=self.clip.random_weights,
            images_embedded=embedded,
            cache_hits=hits,
            seconds=time.perf_counter() - t0,
            windows=windows,
            similarity=sim,
        )
