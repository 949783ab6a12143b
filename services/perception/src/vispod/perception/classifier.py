"""Image-level ImageNet labels from EfficientNet-Lite0 (timm's TF-compatible architecture, the packaged weights)."""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from vispod.common.artifacts import sha256_file
from vispod.common.visual_vocabulary import IMAGENET_CLASSES
from vispod.perception.weights import EFFICIENTNET_LITE0
from vispod.v1 import common_pb2

NAME = "efficientnet-lite0-imagenet"
SIZE, RESIZE = 224, 256
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class ImageClassifier:
    task = "labels"

    def __init__(self, min_score: float, max_labels: int) -> None:
        import timm  # heavy: loaded with the model
        import torch

        self.min_score = min_score
        self.max_labels = max_labels
        path = EFFICIENTNET_LITE0.path()
        model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
        # The file uses another implementation's names in the same order and shapes: mapped one to one.
        saved = torch.load(path, map_location="cpu", weights_only=True)
        target = model.state_dict()
        if len(saved) != len(target):
            raise ValueError(f"{path}: {len(saved)} tensors, the architecture has {len(target)}")
        mapped = {}
        for (name, tensor), (ours, expected) in zip(saved.items(), target.items(), strict=True):
            if tensor.shape != expected.shape:
                raise ValueError(f"{path}: {name} {tuple(tensor.shape)} does not fit {ours} {tuple(expected.shape)}")
            mapped[ours] = tensor
        model.load_state_dict(mapped)
        self._model = model
        self._torch = torch
        self._lock = threading.Lock()
        self.model = common_pb2.PerceptionModel(task=self.task, name=NAME, weights_sha256=sha256_file(path))

    def probabilities(self, image: Image.Image) -> np.ndarray:
        img = image.convert("RGB")
        scale = RESIZE / min(img.size)
        img = img.resize((max(SIZE, round(img.width * scale)), max(SIZE, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
        left, top = (img.width - SIZE) // 2, (img.height - SIZE) // 2
        x = (np.asarray(img.crop((left, top, left + SIZE, top + SIZE)), dtype=np.float32) / 255.0 - MEAN) / STD
        tensor = self._torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
        with self._lock, self._torch.inference_mode():
            return self._model(tensor).softmax(-1)[0].numpy()

    def __call__(self, image: Image.Image) -> list[common_pb2.ImageLabel]:
        probs = self.probabilities(image)
        top = np.argsort(-probs)[:self.max_labels]
        return [common_pb2.ImageLabel(label=IMAGENET_CLASSES[i], score=round(float(probs[i]), 4))
                for i in top if probs[i] >= self.min_score]
