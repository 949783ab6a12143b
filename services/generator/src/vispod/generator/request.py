"""Validation of one ImageSetSubmitted and loading of its images (bad requests → InvalidArgument)."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PIL import Image

from vispod.common.errors import InvalidArgument
from vispod.common.images import ImageFetcher, PixelBudget, decode_image, mime_type
from vispod.v1 import common_pb2, events_pb2

if TYPE_CHECKING:
    from vispod.generator.settings import GeneratorSettings

MIN_SPEAKERS, MAX_SPEAKERS, DEFAULT_SPEAKERS = 2, 4, 2
_LANG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")


@dataclass
class Job:
    event: events_pb2.ImageSetSubmitted
    speakers: list[common_pb2.Speaker]
    target_words: int
    language: str
    captions: list[str]                      # one per image ("" when none)
    images: list[Image.Image] = field(default_factory=list)        # decoded, story order (pixels, facts)
    image_bytes: list[tuple[bytes, str]] = field(default_factory=list)   # pixel mode: what the VLM gets
    digests: list[str] = field(default_factory=list)                 # sha256 of each image's bytes

    @property
    def speaker_names(self) -> list[str]:
        return [s.name for s in self.speakers]


def normalise_speakers(speakers) -> list[common_pb2.Speaker]:
    """None given → "Speaker 1", "Speaker 2"; 1 or 5+ → invalid; empty names → "Speaker N"."""
    if len(speakers) == 0:
        return [common_pb2.Speaker(name=f"Speaker {i + 1}") for i in range(DEFAULT_SPEAKERS)]
    if not MIN_SPEAKERS <= len(speakers) <= MAX_SPEAKERS:
        raise InvalidArgument(f"{len(speakers)} speaker(s) given: a dialogue needs {MIN_SPEAKERS} to {MAX_SPEAKERS}")
    out = []
    for i, sp in enumerate(speakers):
        name = " ".join(sp.name.split()) or f"Speaker {i + 1}"
        if len(name) > 40 or ":" in name or "\n" in sp.persona:
            raise InvalidArgument(f"speaker {i + 1}: names are at most 40 characters without ':'; one-line personas")
        if len(sp.persona) > 500:
            raise InvalidArgument(f"speaker {i + 1}: persona longer than 500 characters")
        out.append(common_pb2.Speaker(name=name, persona=sp.persona.strip()))
    names = [s.name.lower() for s in out]
    if len(set(names)) != len(names):
        raise InvalidArgument("speaker names must be distinct")
    return out


def prepare(event: events_pb2.ImageSetSubmitted, settings: GeneratorSettings, fetcher: ImageFetcher,
            text_only: bool) -> Job:
    """Checks the request and loads its images; raises InvalidArgument with the reason."""
    if not event.image_set_id:
        raise InvalidArgument("image_set_id is empty")
    n = len(event.images)
    if n == 0:
        raise InvalidArgument("no images")
    limit = min(settings.max_images, settings.images.max_images)
    if n > limit:
        raise InvalidArgument(f"{n} images: at most {limit} per request")
    speakers = normalise_speakers(event.speakers)
    target = event.target_words or settings.default_target_words
    if not 50 <= target <= settings.max_target_words:
        raise InvalidArgument(f"target_words {event.target_words} outside 50..{settings.max_target_words}")
    language = event.language or "en"
    if not _LANG.match(language):
        raise InvalidArgument(f"language {language!r} is not a BCP-47 tag")
    if len(event.style_instructions) > 2000:
        raise InvalidArgument("style_instructions longer than 2000 characters")
    captions = [(ref.caption or ref.alt_text).strip() for ref in event.images]
    facts = text_only and settings.text_input != "captions"
    if text_only and not facts:
        missing = [i + 1 for i, c in enumerate(captions) if not c]
        if missing:
            raise InvalidArgument(f"image(s) {missing} have no caption or alt text, and this generator reads "
                                  "captions only (text_input=captions; captions+facts describes photos by perception)")
    job = Job(event, speakers, target, language, captions)
    if text_only and not facts and not settings.validate_images_in_text_mode:
        return job
    budget = PixelBudget(settings.images)
    for i, ref in enumerate(event.images):
        data = fetcher.fetch(ref.uri, ref.sha256)
        fmt = _format(data)
        if ref.mime_type and fmt and mime_type(fmt) != ref.mime_type.lower():
            raise InvalidArgument(f"image {i + 1}: declared {ref.mime_type} but the bytes are {mime_type(fmt)}")
        img = decode_image(data, settings.images, f"image {i + 1} ({ref.uri})", budget)
        if not text_only or facts:
            job.images.append(img)
            job.digests.append(hashlib.sha256(data).hexdigest())
        if not text_only:
            job.image_bytes.append((data, mime_type(fmt)))
    return job


def _format(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format
    except Exception:  # decode_image reports it with the full reason
        return None
