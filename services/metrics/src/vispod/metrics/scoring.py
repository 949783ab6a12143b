"""One dialogue + its images -> style (robust and paper) and grounding metrics; shared by gRPC and Kafka.

Input checks raise vispod.common.grpc_server.InvalidArgument with the reason: gRPC turns it into
INVALID_ARGUMENT, the Kafka handler into a dead letter. Images that cannot be fetched are fatal in
`strict` mode (gRPC: the caller can fix the request) and become warnings otherwise (events: the style
metrics are still worth publishing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vispod.common.errors import InvalidArgument
from vispod.common.images import ImageAccessError, ImageFetcher, PixelBudget
from vispod.metrics import prom
from vispod.metrics.clip_model import RANDOM_WEIGHTS_NOTE, load_clip
from vispod.metrics.image_cache import ImageInput
from vispod.metrics.settings import MetricsSettings
from vispod.metrics.style import (
    StyleResult,
    dialogue_text,
    dialogue_turns,
    robust_style_of_turns,
    style_of_dialogue,
)
from vispod.v1 import common_pb2

if TYPE_CHECKING:  # torch loads only when grounding is on
    from vispod.metrics.grounding import GroundingResult, GroundingScorer

log = logging.getLogger(__name__)


@dataclass
class ScoreOutcome:
    style: StyleResult
    paper_style: StyleResult
    grounding: GroundingResult | None
    warnings: list[str] = field(default_factory=list)


def build_grounding(settings: MetricsSettings) -> GroundingScorer | None:
    """The CLIP scorer the settings ask for (None when grounding is off)."""
    if not settings.grounding_enabled:
        return None
    import torch

    from vispod.metrics.grounding import GroundingScorer

    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    clip = load_clip(settings.clip_model, settings.clip_weights, random_init=settings.clip_random_init,
                     seed=settings.clip_seed)
    return GroundingScorer(clip, cache_size=settings.image_cache_size, text_batch_size=settings.text_batch_size,
                           image_batch_size=settings.image_batch_size)


def dialogue_size(dialogue: common_pb2.Dialogue) -> int:
    return len(dialogue.text.encode()) + sum(len(t.text.encode()) + len(t.speaker.encode()) for t in dialogue.turns)


class DialogueScorer:
    def __init__(self, settings: MetricsSettings, grounding: GroundingScorer | None,
                 fetcher: ImageFetcher | None = None) -> None:
        self.settings = settings
        self.grounding = grounding
        self.fetcher = fetcher or ImageFetcher(settings.images)

    def validate(self, dialogue: common_pb2.Dialogue, images: Sequence[common_pb2.ImageRef],
                 distractors: Sequence[common_pb2.ImageRef] = ()) -> None:
        size = dialogue_size(dialogue)
        if size > self.settings.max_dialogue_bytes:
            raise InvalidArgument(f"dialogue is {size} bytes, over the {self.settings.max_dialogue_bytes}-byte limit")
        if not dialogue.text.strip() and not any(t.text.strip() for t in dialogue.turns):
            raise InvalidArgument("empty dialogue: neither text nor turns with text")
        if not images:
            raise InvalidArgument("no images: a dialogue is scored against its image set")
        limit = self.settings.images.max_images
        if len(images) > limit:
            raise InvalidArgument(f"{len(images)} images, over the limit of {limit}")
        if len(distractors) > self.settings.max_distractors:
            raise InvalidArgument(f"{len(distractors)} distractor images, over the limit of "
                                  f"{self.settings.max_distractors}")
        for i, ref in enumerate([*images, *distractors]):
            if not ref.uri:
                raise InvalidArgument(f"image {i} has no uri")

    def _inputs(self, refs: Sequence[common_pb2.ImageRef], kind: str, strict: bool,
                warnings: list[str], budget: PixelBudget) -> list[ImageInput]:
        out = []
        for i, ref in enumerate(refs):
            try:
                data = self.fetcher.fetch(ref.uri, ref.sha256)
            except ImageAccessError as exc:
                if strict:
                    raise InvalidArgument(f"{kind} {i}: {exc}") from exc
                warnings.append(f"{kind} {i} skipped: {exc}")
                continue
            img = ImageInput.from_bytes(data, self.settings.images, ref.uri, budget)
            if not strict and self.grounding is not None and img.key not in self.grounding.cache:
                # decode now, so one corrupt image costs a warning instead of the whole set's grounding
                try:
                    decoded = img.load()
                except ImageAccessError as exc:
                    warnings.append(f"{kind} {i} skipped: {exc}")
                    continue
                img = ImageInput(img.key, lambda decoded=decoded: decoded)
            out.append(img)
        return out

    def score(self, dialogue: common_pb2.Dialogue, images: Sequence[common_pb2.ImageRef],
              distractors: Sequence[common_pb2.ImageRef] = (), *, strict: bool = True,
              path: str = "grpc") -> ScoreOutcome:
        self.validate(dialogue, images, distractors)
        started = time.perf_counter()
        warnings: list[str] = []
        turns = dialogue_turns(dialogue)
        style = robust_style_of_turns(turns, dialogue.language)
        paper = style_of_dialogue(dialogue, "paper")
        prom.SCORING_SECONDS.labels(path, "style").observe(time.perf_counter() - started)

        grounding = None
        if self.grounding is None:
            warnings.append("grounding disabled (VISPOD_METRICS_GROUNDING_ENABLED=false)")
        else:
            g_started = time.perf_counter()
            budget = PixelBudget(self.settings.images)  # one per request, images and distractors together
            inputs = self._inputs(images, "image", strict, warnings, budget)
            extra = self._inputs(distractors, "distractor", strict, warnings, budget)
            if not inputs:
                warnings.append("no usable image: grounding not computed")
            else:
                speech = " ".join(t.text for t in turns)
                try:
                    grounding = self.grounding.score(speech, inputs, transcript=dialogue_text(dialogue),
                                                     distractors=extra)
                except ImageAccessError as exc:  # decoded lazily: a corrupt image surfaces here
                    if strict:
                        raise
                    warnings.append(f"grounding not computed: {exc}")
                except ValueError as exc:
                    raise InvalidArgument(str(exc)) from exc
                if grounding is not None:
                    prom.IMAGES_EMBEDDED.inc(grounding.images_embedded)
                    prom.CACHE_HITS.inc(grounding.cache_hits)
                    prom.CACHE_MISSES.inc(grounding.images_embedded)
                    if grounding.random_weights:
                        warnings.append(RANDOM_WEIGHTS_NOTE)
            prom.SCORING_SECONDS.labels(path, "grounding").observe(time.perf_counter() - g_started)
        prom.SCORING_SECONDS.labels(path, "total").observe(time.perf_counter() - started)
        return ScoreOutcome(style=style, paper_style=paper, grounding=grounding, warnings=warnings)


def observe(outcome: ScoreOutcome, system_label: str) -> None:
    """Quality metrics into the per-system histograms."""
    for name, hist in prom.STYLE_HISTOGRAMS.items():
        hist.labels(system_label).observe(float(getattr(outcome.style, name)))
    g = outcome.grounding
    if g is not None:
        weights = "random" if g.random_weights else "real"
        for name, hist in prom.GROUNDING_HISTOGRAMS.items():
            hist.labels(system_label, weights).observe(float(getattr(g, name)))
