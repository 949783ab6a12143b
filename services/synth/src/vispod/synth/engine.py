"""The text-to-image engine: a diffusers pipeline from a local folder, batching, deterministic seeds, PNG out.

Determinism: every prompt gets its own CPU `torch.Generator` seeded with request seed + index, and
batches are cut the same way for the same request, so the same request on the same device and
settings gives the same PNG bytes. PNGs are written without timestamps or other varying chunks.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from vispod.common.random_weights import has_random_weights
from vispod.synth import metrics
from vispod.synth.limits import RequestError, SynthRequest, request_from_proto
from vispod.synth.settings import SynthSettings
from vispod.v1 import events_pb2

log = logging.getLogger(__name__)

PNG_MIME = "image/png"

_T = TypeVar("_T")


@dataclass(frozen=True)
class RenderedImage:
    png: bytes
    sha256: str
    seed: int


@dataclass(frozen=True)
class StoredImage:
    uri: str
    sha256: str
    seed: int
    mime_type: str = PNG_MIME


@dataclass(frozen=True)
class SynthResult:
    images: list[StoredImage]
    model: str
    seconds: float
    random_weights: bool


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch  # heavy: torch, only when an engine is built

    if dtype == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]


def load_pipeline(model_path: Path, device: str, dtype: str) -> Any:
    """Load any text-to-image pipeline diffusers knows from a local folder; never reaches a hub."""
    from diffusers import AutoPipelineForText2Image, DiffusionPipeline  # heavy: only when a pipeline loads

    if not (model_path / "model_index.json").is_file():
        raise FileNotFoundError(f"no diffusers pipeline at {model_path} (model_index.json missing)")
    torch_dtype = resolve_dtype(dtype, device)
    try:
        pipe = AutoPipelineForText2Image.from_pretrained(str(model_path), dtype=torch_dtype, local_files_only=True)
    except ValueError:  # a pipeline class AutoPipeline does not map: load it by its own model_index.json
        pipe = DiffusionPipeline.from_pretrained(str(model_path), dtype=torch_dtype, local_files_only=True)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def encode_png(image: Any) -> bytes:
    """PNG bytes of a PIL image: fixed compression, no metadata, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


class Synthesizer:
    """One loaded pipeline, shared by gRPC threads and the Kafka consumer; calls are serialised by a lock."""

    def __init__(self, settings: SynthSettings, pipeline: Any | None = None) -> None:
        if settings.model_path is None and pipeline is None:
            raise ValueError("VISPOD_SYNTH_MODEL_PATH is not set: the synth service needs a local diffusers pipeline")
        self.settings = settings
        if settings.cpu_threads:
            import torch  # heavy: torch, only when an engine is built

            torch.set_num_threads(settings.cpu_threads)
        self.pipe = (
            pipeline if pipeline is not None else load_pipeline(settings.model_path, settings.device, settings.dtype)
        )
        path = settings.model_path
        self.model = settings.model_name or (path.name if path else type(self.pipe).__name__)
        self.random_weights = settings.random_weights or (path is not None and has_random_weights(path))
        params = inspect.signature(self.pipe.__call__).parameters
        self._takes_negative = "negative_prompt" in params
        self._takes_guidance = "guidance_scale" in params
        self._lock = threading.Lock()

    def render(self, req: SynthRequest) -> list[RenderedImage]:
        """Draw one PNG per prompt, in prompt order."""
        import torch  # heavy: torch, only when an engine is built

        if req.negative_prompt and not self._takes_negative:
            raise RequestError(f"negative_prompt: the {type(self.pipe).__name__} pipeline takes no negative prompt")
        out: list[RenderedImage] = []
        size = self.settings.batch_size
        metrics.QUEUE_DEPTH.inc()
        try:
            with self._lock:
                for start in range(0, len(req.prompts), size):
                    prompts = list(req.prompts[start : start + size])
                    seeds = [req.image_seed(start + i) for i in range(len(prompts))]
                    # CPU generators: the initial noise is the same bytes whatever the device.
                    generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
                    kwargs: dict[str, Any] = {
                        "prompt": prompts,
                        "width": req.width,
                        "height": req.height,
                        "num_inference_steps": req.steps,
                        "generator": generators,
                        "output_type": "pil",
                    }
                    if self._takes_guidance:
                        kwargs["guidance_scale"] = req.guidance
                    if req.negative_prompt:
                        kwargs["negative_prompt"] = [req.negative_prompt] * len(prompts)
                    began = time.perf_counter()
                    with torch.inference_mode():
                        images = self.pipe(**kwargs).images
                    metrics.BATCH_SECONDS.observe(time.perf_counter() - began)
                    for seed, image in zip(seeds, images, strict=True):
                        png = encode_png(image)
                        out.append(RenderedImage(png, hashlib.sha256(png).hexdigest(), seed))
        finally:
            metrics.QUEUE_DEPTH.dec()
        return out

    def synthesize(self, req: SynthRequest, store: Any, source: str) -> SynthResult:
        """Render, write each PNG to the content-addressed artifact store, and count it."""

        def render_and_store() -> list[StoredImage]:
            return [StoredImage(store.put_bytes(r.png, ".png"), r.sha256, r.seed) for r in self.render(req)]

        stored, seconds = self._counted(source, render_and_store)
        return SynthResult(stored, self.model, seconds, self.random_weights)

    def draw(self, msg: events_pb2.SynthesisRequested, source: str = "local") -> list[RenderedImage]:
        """The PNGs for one SynthesisRequested in this process, stored nowhere: validated with the service's limits
        (RequestError, an InvalidArgument, when they refuse it) and counted like a service request under `source`.
        The in-process path of the dataset builder."""
        rendered, _ = self._counted(source, lambda: self.render(request_from_proto(msg, self.settings)))
        return rendered

    def _counted(self, source: str, work: Callable[[], list[_T]]) -> tuple[list[_T], float]:
        began = time.perf_counter()
        try:
            images = work()
        except RequestError:
            metrics.REQUESTS.labels(source, "invalid").inc()
            raise
        except Exception:
            metrics.REQUESTS.labels(source, "failed").inc()
            raise
        seconds = time.perf_counter() - began
        metrics.REQUESTS.labels(source, "ok").inc()
        metrics.IMAGES.labels(source).inc(len(images))
        metrics.REQUEST_SECONDS.labels(source).observe(seconds)
        return images, seconds
