"""The synth service: gRPC SynthService.Synthesize and the vispod.synthesis.requested consumer.

Both paths take the same message (the gRPC request carries the SynthesisRequested event and answers with
SynthesisCompleted), validate with the same limits (vispod.synth.limits) and draw with the same engine, so
one request gives the same images either way. Bad requests raise RequestError (an InvalidArgument):
INVALID_ARGUMENT over gRPC, the dead-letter topic on Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import grpc

from vispod.common.artifacts import ArtifactStore
from vispod.common.bus import EventConsumer, Output
from vispod.common.errors import InvalidArgument
from vispod.common.events import Envelope
from vispod.common.service import GrpcService, Service, serve
from vispod.common.topics import Topic
from vispod.synth import metrics
from vispod.synth.engine import Synthesizer, SynthResult
from vispod.synth.limits import RequestError, SynthRequest, request_from_proto
from vispod.synth.settings import SynthSettings
from vispod.synth.tiny import build_tiny_sd_pipeline
from vispod.v1 import common_pb2, events_pb2, synth_pb2, synth_pb2_grpc

log = logging.getLogger(__name__)

TINY_DIR = "tiny-sd-pipeline"


def _completed(request: events_pb2.SynthesisRequested, result: SynthResult) -> events_pb2.SynthesisCompleted:
    """The answer on either path: the request's ids and labels, the stored images, the model."""
    return events_pb2.SynthesisCompleted(
        request_id=request.request_id,
        correlation_id=request.correlation_id,
        status=common_pb2.STATUS_OK,
        images=[common_pb2.ImageRef(uri=i.uri, sha256=i.sha256, mime_type=i.mime_type) for i in result.images],
        model=result.model,
        seconds=result.seconds,
        random_weights=result.random_weights,
        labels=dict(request.labels),
    )


def _validated(request: events_pb2.SynthesisRequested, settings: SynthSettings, path: str) -> SynthRequest:
    try:
        return request_from_proto(request, settings)
    except RequestError:
        metrics.REQUESTS.labels(path, "invalid").inc()
        raise


class SynthServicer(synth_pb2_grpc.SynthServiceServicer):
    def __init__(self, synth: Synthesizer, store: ArtifactStore) -> None:
        self.synth = synth
        self.store = store

    def Synthesize(self, request: synth_pb2.SynthesizeRequest, context: grpc.ServicerContext):
        result = self.synth.synthesize(_validated(request.request, self.synth.settings, "grpc"), self.store, "grpc")
        return synth_pb2.SynthesizeResponse(result=_completed(request.request, result))


def make_handler(synth: Synthesizer, store: ArtifactStore):  # type: ignore[no-untyped-def]
    """The Kafka handler: SynthesisRequested → SynthesisCompleted; invalid requests raise InvalidArgument (DLQ)."""

    def handle(env: Envelope) -> Iterator[Output]:
        msg = env.message
        assert isinstance(msg, events_pb2.SynthesisRequested)
        if not msg.request_id:
            metrics.REQUESTS.labels("kafka", "invalid").inc()
            raise InvalidArgument("request_id: required, the builder waits for its answer by it")
        # Counts its own outcome; a field the pipeline cannot honour (negative prompt on FLUX) is a RequestError.
        result = synth.synthesize(_validated(msg, synth.settings, "kafka"), store, "kafka")
        yield Output(Topic.SYNTHESIS_COMPLETED, _completed(msg, result))

    return handle


def resolve_model(settings: SynthSettings) -> SynthSettings:
    """Settings with a model path: the configured one, or (tiny_if_unset) a freshly built random tiny pipeline."""
    if settings.model_path is not None:
        return settings
    if not settings.tiny_if_unset:
        raise SystemExit("no synth model: set VISPOD_SYNTH_MODEL_PATH to a diffusers pipeline folder, or opt in to "
                         "a tiny RANDOM pipeline whose images mean nothing with VISPOD_SYNTH_TINY_IF_UNSET=true")
    target = Path(settings.artifact_root) / TINY_DIR
    if not (target / "model_index.json").is_file():
        log.warning(
            "no VISPOD_SYNTH_MODEL_PATH: building a tiny RANDOM pipeline at %s; its images mean nothing", target
        )
        build_tiny_sd_pipeline(target)
    return settings.model_copy(update={"model_path": target})


def build(settings: SynthSettings) -> Service[Synthesizer]:
    settings = resolve_model(settings)
    synth = Synthesizer(settings)
    if synth.random_weights:
        log.warning("synth model %s has RANDOM weights: every output is marked random_weights=true", synth.model)
    store = ArtifactStore(settings.artifact_root)
    consumer = EventConsumer(
        service="synth",
        topics=[Topic.SYNTHESIS_REQUESTED],
        expected=events_pb2.SynthesisRequested,
        handler=make_handler(synth, store),
        kafka=settings.kafka,
        max_batch=settings.batch_size,
    )
    return Service(settings, synth, grpc=[GrpcService.of(SynthServicer(synth, store))], consumers=[consumer])


def main() -> None:
    """`python -m vispod.synth`."""
    serve(SynthSettings, build)
