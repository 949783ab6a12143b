"""COCO objects with OpenCV's DNN module running SSD MobileNet v2 (90-id COCO map, boxes normalised 0..1)."""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from vispod.common.artifacts import sha256_file
from vispod.common.visual_vocabulary import COCO_LABEL_MAP
from vispod.perception.weights import SSD_CONFIG, SSD_GRAPH
from vispod.v1 import common_pb2

NAME = "ssd-mobilenet-v2-coco"
INPUT_SIZE = 300


class ObjectDetector:
    task = "objects"

    def __init__(self, min_score: float, max_objects: int) -> None:
        import cv2  # heavy: loaded with the model

        self.min_score = min_score
        self.max_objects = max_objects
        graph = SSD_GRAPH.path()
        self._net = cv2.dnn.readNetFromTensorflow(str(graph), str(SSD_CONFIG.path()))
        self._cv2 = cv2
        self._lock = threading.Lock()      # a cv2.dnn.Net is not safe to run from two threads at once
        self.model = common_pb2.PerceptionModel(task=self.task, name=NAME, weights_sha256=sha256_file(graph))

    def __call__(self, image: Image.Image) -> list[common_pb2.DetectedObject]:
        rgb = np.asarray(image.convert("RGB"))
        blob = self._cv2.dnn.blobFromImage(rgb, size=(INPUT_SIZE, INPUT_SIZE), swapRB=False, crop=False)
        with self._lock:
            self._net.setInput(blob)
            out = self._net.forward()          # [1, 1, N, 7]: image, class id, score, x0, y0, x1, y1
        found = []
        for _, class_id, score, x0, y0, x1, y1 in out[0, 0]:
            label = COCO_LABEL_MAP.get(int(class_id))
            if label is None or score < self.min_score:
                continue
            box = common_pb2.Box(x_min=_clip(x0), y_min=_clip(y0), x_max=_clip(x1), y_max=_clip(y1))
            if box.x_max <= box.x_min or box.y_max <= box.y_min:
                continue
            found.append(common_pb2.DetectedObject(label=label, score=round(float(score), 4), box=box))
        found.sort(key=lambda o: -o.score)
        return found[:self.max_objects]


def _clip(v: float) -> float:
    return round(min(1.0, max(0.0, float(v))), 4)
