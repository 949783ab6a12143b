"""Visible text (signs, banners, shop fronts) with PP-OCRv4 through rapidocr-onnxruntime."""

from __future__ import annotations

import hashlib
import re
import threading

import numpy as np
from PIL import Image

from vispod.common.artifacts import sha256_file
from vispod.perception.weights import OCR_DET, OCR_REC
from vispod.v1 import common_pb2

NAME = "pp-ocrv4"
MAX_TEXT_CHARS = 60
_ALNUM = re.compile(r"[A-Za-z0-9]")


def readable(text: str) -> bool:
    """At least two Latin letters or digits, and mostly ASCII: the recogniser's Chinese-first vocabulary reads
    textures as stray CJK characters."""
    text = text.strip()
    if len(_ALNUM.findall(text)) < 2:
        return False
    return sum(ch.isascii() for ch in text) >= 0.8 * len(text)


class TextReader:
    task = "text"

    def __init__(self, min_score: float, max_texts: int, threads: int = 1) -> None:
        from rapidocr_onnxruntime import RapidOCR  # heavy (onnxruntime): loaded with the model

        self.min_score = min_score
        self.max_texts = max_texts
        self._engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)
        self._lock = threading.Lock()
        # Two files: the sha256 over their two sha256s (detector, then recogniser).
        digest = hashlib.sha256((sha256_file(OCR_DET.path()) + sha256_file(OCR_REC.path())).encode()).hexdigest()
        self.model = common_pb2.PerceptionModel(task=self.task, name=NAME, weights_sha256=digest)

    def __call__(self, image: Image.Image) -> list[common_pb2.DetectedText]:
        rgb = np.asarray(image.convert("RGB"))
        with self._lock:
            result, _ = self._engine(np.ascontiguousarray(rgb[:, :, ::-1]))   # BGR, as OpenCV reads files
        height, width = rgb.shape[:2]
        found = []
        for points, text, score in result or []:
            text = " ".join(str(text).split())[:MAX_TEXT_CHARS]
            if float(score) < self.min_score or not readable(text):
                continue
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            box = common_pb2.Box(x_min=_unit(min(xs) / width), y_min=_unit(min(ys) / height),
                                 x_max=_unit(max(xs) / width), y_max=_unit(max(ys) / height))
            found.append(common_pb2.DetectedText(text=text, score=round(float(score), 4), box=box))
        found.sort(key=lambda t: -t.score)
        return found[:self.max_texts]


def _unit(v: float) -> float:
    return round(min(1.0, max(0.0, float(v))), 4)
