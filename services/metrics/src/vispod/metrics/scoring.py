"""One dialogue + its images -> every metric of MetricsComputed; shared by gRPC and Kafka.

Style (robust and paper), format validity read from the text alone (format_validity.py), object hallucination
against the photos' captions and perception facts (hallucination.py) and, with the text model on (real
all-MiniLM-L6-v2 weights), scene-aligned caption grounding (aligned_grounding.py) and naturalness
(naturalness.py); CLIP grounding when a CLIP model is configured.

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

from prometheus_client import Counter

from vispod.common.errors import InvalidArgument
from vispod.common.images import ImageAccessError, ImageFetcher, PixelBudget
from vispod.common.metric_fields import values
from vispod.metrics import prom
from vispod.metrics.aligned_grounding import AlignedGrounding, aligned_grounding
from vispod.metrics.caption_grounding import CaptionGrounder
from vispod.metrics.clip_model import RANDOM_WEIGHTS_NOTE, load_clip
from vispod.metrics.format_validity import FormatCheck, check_format
from vispod.metrics.hallucination import Hallucination, hallucination
from vispod.metrics.image_cache import ImageInput
from vispod.metrics.naturalness import Naturalness, naturalness
from vispod.metrics.settings import MetricsSettings
from vispod.metrics.style import (
    StyleResult,
    dialogue_text,
    dialogue_turns,
    robust_style_of_turns,
    style_of_dialogue,
)
from vispod.v1 import common_pb2, events_pb2

if TYPE_CHECKING:  # torch loads only when grounding is on
    from vispod.metrics.grounding import GroundingResult, GroundingScorer

log = logging.getLogger(__name__)


@dataclass
class ScoreOutcome:
    style: StyleResult
    paper_style: StyleResult
    grounding: GroundingResult | None
    format: FormatCheck
    hallucination: Hallucination | None = None
    aligned_grounding: AlignedGrounding | None = None
    naturalness: Naturalness | None = None
    warnings: list[str] = field(default_factory=list)


def echo_sources(images: Sequence[common_pb2.ImageRef], prompt: str = "") -> str:
    """What a dialogue must not copy: the prompt when known, and every caption, alt text and read text."""
    parts = [prompt] if prompt else []
    for ref in images:
        parts += [ref.caption, ref.alt_text, *(t.text for t in ref.perception.text)]
    return "\n".join(p for p in parts if p)


def scene_turns(dialogue: common_pb2.Dialogue) -> list[common_pb2.Turn]:
    """The structured turns (with their photo references), else turns parsed from the text (no references)."""
    if any(t.text.strip() for t in dialogue.turns):
        return list(dialogue.turns)
    return [common_pb2.Turn(speaker=t.speaker, text=t.text) for t in dialogue_turns(dialogue)]


def build_grounding(settings: MetricsSettings) -> GroundingScorer | None:
    """The CLIP scorer the settings ask for (None when grounding is off)."""
    if not settings.grounding_enabled:
        return None
    # heavy (seconds): torch, and the grounding module built on it, only when grounding is on
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
                 fetcher: ImageFetcher | None = None, text_model: CaptionGrounder | None = None) -> None:
        self.settings = settings
        self.grounding = grounding
        self.fetcher = fetcher or ImageFetcher(settings.images)
        self.text_model = text_model

    def text_metrics(self, dialogue: common_pb2.Dialogue, images: Sequence[common_pb2.ImageRef],
                     prompt: str = "") -> tuple[FormatCheck, Hallucination | None, AlignedGrounding | None,
                                                Naturalness | None]:
        """The metrics that read only the text and what travels with the photos (no pixels)."""
        text = dialogue_text(dialogue)
        check = check_format(text, echo_sources(images, prompt), [s.name for s in dialogue.speakers])
        turns = scene_turns(dialogue)
        found = hallucination(turns, images)
        if self.text_model is None:
            return check, found, None, None
        aligned = aligned_grounding(self.text_model, [ref.caption for ref in images], [t.text for t in turns],
                                    [list(t.image_refs) for t in turns])
        return check, found, aligned, naturalness(self.text_model, dialogue_turns(dialogue))

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
              path: str = "grpc", prompt: str = "") -> ScoreOutcome:
        self.validate(dialogue, images, distractors)
        started = time.perf_counter()
        warnings: list[str] = []
        turns = dialogue_turns(dialogue)
        style = robust_style_of_turns(turns, dialogue.language)
        paper = style_of_dialogue(dialogue, "paper")
        prom.SCORING_SECONDS.labels(path, "style").observe(time.perf_counter() - started)
        t_started = time.perf_counter()
        check, found, aligned, natural = self.text_metrics(dialogue, images, prompt)
        if self.text_model is None:
            warnings.append("text model off (VISPOD_METRICS_TEXT_MODEL_ENABLED=false): no aligned grounding, "
                            "no naturalness")
        prom.SCORING_SECONDS.labels(path, "text").observe(time.perf_counter() - t_started)

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
        return ScoreOutcome(style=style, paper_style=paper, grounding=grounding, format=check, hallucination=found,
                            aligned_grounding=aligned, naturalness=natural, warnings=warnings)


def observe(computed: events_pb2.MetricsComputed, system_label: str) -> None:
    """Every metric of a MetricsComputed into its per-system instrument (prom.INSTRUMENTS)."""
    for section, instruments in prom.INSTRUMENTS.items():
        numbers = values(computed, section)
        if numbers is None:
            continue
        labels = [system_label]
        if section == "grounding":
            labels.append("random" if computed.grounding.random_weights else "real")
        for name, instrument in instruments.items():
            if isinstance(instrument, Counter):
                if numbers[name]:
                    instrument.labels(*labels).inc()
            else:
                instrument.labels(*labels).observe(numbers[name])
