"""The one perception interface, and its in-process implementation over the three offline models."""

from __future__ import annotations

import hashlib
import threading
import time
from functools import cache
from typing import Protocol

from PIL import Image

from vispod.common.lru import LRU
from vispod.perception.classifier import ImageClassifier
from vispod.perception.detector import ObjectDetector
from vispod.perception.ocr import TextReader
from vispod.perception.settings import PerceptionSettings
from vispod.v1 import common_pb2


class Perceiver(Protocol):
    """Photo -> facts. `models` names what runs (empty for a backend that reads the pixels itself)."""

    @property
    def models(self) -> list[common_pb2.PerceptionModel]: ...

    def perceive(self, image: Image.Image, content_sha256: str = "") -> common_pb2.Perception: ...


class NoPerception:
    """For a VLM that sees the pixels: no facts are made."""

    @property
    def models(self) -> list[common_pb2.PerceptionModel]:
        return []

    def perceive(self, image: Image.Image, content_sha256: str = "") -> common_pb2.Perception:
        return common_pb2.Perception()


class PhotoPerceiver:
    """Objects (SSD MobileNet v2 COCO), text (PP-OCRv4) and image labels (EfficientNet-Lite0); the models load on
    first use, once per process for the same settings; facts cached by the photo's content."""

    def __init__(self, settings: PerceptionSettings | None = None) -> None:
        self.settings = settings or PerceptionSettings()
        self._json = self.settings.model_dump_json()
        self._cache: LRU[str, bytes] = LRU(self.settings.cache_size)
        self._key = hashlib.sha256(self._json.encode()).hexdigest()[:16]

    @property
    def models(self) -> list[common_pb2.PerceptionModel]:
        return [r.model for r in _runners(self._json)]

    def perceive(self, image: Image.Image, content_sha256: str = "") -> common_pb2.Perception:
        key = f"{content_sha256}:{self._key}" if content_sha256 else ""
        if key and (cached := self._cache.get(key)) is not None:
            return common_pb2.Perception.FromString(cached)
        started = time.monotonic()
        facts = common_pb2.Perception()
        for runner in _runners(self._json):
            getattr(facts, runner.task).extend(runner(image))    # the task names the field: objects, text, labels
            facts.models.append(runner.model)
        facts.seconds = round(time.monotonic() - started, 4)
        if key:
            self._cache.put(key, facts.SerializeToString())
        return facts


_LOAD_LOCK = threading.Lock()


@cache
def _loaded(settings_json: str) -> tuple:
    s = PerceptionSettings.model_validate_json(settings_json)
    runners: list = []
    if s.objects:
        runners.append(ObjectDetector(s.object_min_score, s.max_objects))
    if s.text:
        runners.append(TextReader(s.text_min_score, s.max_texts, s.threads))
    if s.labels:
        runners.append(ImageClassifier(s.label_min_score, s.max_labels))
    return tuple(runners)


def _runners(settings_json: str) -> tuple:
    with _LOAD_LOCK:       # one load per settings, even when two requests arrive at once
        return _loaded(settings_json)
