"""The synth service: gRPC SynthService.Synthesize and the vispod.synthesis.requested consumer.

Both paths validate with the same limits (vispod.synth.limits) and draw with the same engine, so
one request gives the same images either way. Bad requests: INVALID_ARGUMENT over gRPC, the
dead-letter topic (via bus.InvalidEvent) on Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import grpc

from vispod.common.artifacts import ArtifactStore
from vispod.common.bus import EventConsumer, InvalidEvent, Output
from vispod.common.events import Envelope
from vispod.common.grpc_server import InvalidArgument
from vispod.common.settings import load_settings
from vispod.common.topics import Topic
from vispod.synth import metrics
from vispod.synth.engine import Synthesizer, SynthResult
from vispod.synth.limits import RequestError, request_from_proto
from vispod.synth.settings import SynthSettings
from vispod.synth.tiny import build_tiny_sd_pipeline
from vispod.v1 import common_pb2, events_pb2, synth_pb2, synth_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = "vispod.v1.SynthService"
TINY_DIR = "tiny-sd-pipeline"


def _image_refs(result: SynthResult) -> list[common_pb2.ImageRef]:
    return [common_pb2.ImageRef(uri=i.uri, sha256=i.sha256, mime_type=i.mime_type) for i in result.images]


class SynthServicer(synth_pb2_grpc.SynthServiceServicer):
    def __init__(self, synth: Synthesizer, store: ArtifactStore) -> None:
        self.synth = synth
        self.store = store

    def Synthesize(self, request: synth_pb2.SynthesizeRequest, context: grpc.ServicerContext):
        try:
            req = request_from_proto(request, self.synth.settings)
        except RequestError as exc:
            metrics.REQUESTS.labels("grpc", "invalid").inc()
            raise InvalidArgument(str(exc)) from None
        try:
            result = self.synth.synthesize(req, self.store, "grpc")
        except RequestError as exc:  # the pipeline cannot honour a field (e.g. negative prompt on FLUX)
            raise InvalidArgument(str(exc)) from None
        return synth_pb2.SynthesizeResponse(
            images=_image_refs(result), model=result.model, seconds=result.seconds, random_weights=result.random_weights
        )


def make_handler(synth: Synthesizer, store: ArtifactStore):  # type: ignore[no-untyped-def]
    """The Kafka handler: SynthesisRequested → SynthesisCompleted; invalid requests → InvalidEvent (DLQ)."""

    def handle(env: Envelope) -> Iterator[Output]:
        msg = env.message
        assert isinstance(msg, events_pb2.SynthesisRequested)
        if not msg.request_id:
            metrics.REQUESTS.labels("kafka", "invalid").inc()
            raise InvalidEvent("request_id: required, the builder waits for its answer by it")
        try:
            req = request_from_proto(msg, synth.settings)
        except RequestError as exc:
            metrics.REQUESTS.labels("kafka", "invalid").inc()
            raise InvalidEvent(str(exc)) from None
        try:
            result = synth.synthesize(req, store, "kafka")  # counts its own outcome
        except RequestError as exc:
            raise InvalidEvent(str(exc)) from None
        yield Output(
            Topic.SYNTHESIS_COMPLETED,
            events_pb2.SynthesisCompleted(
                request_id=msg.request_id,
                correlation_id=msg.correlation_id,
                status=common_pb2.STATUS_OK,
                images=_image_refs(result),
                model=result.model,
                seconds=result.seconds,
                random_weights=result.random_weights,
                labels=dict(msg.labels),
            ),
        )

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


def build_service(settings: SynthSettings) -> tuple[list[tuple[str, object]], list[EventConsumer], Synthesizer]:
    """The gRPC registrars and consumers of one synth process (for run_service or start_service)."""
    settings = resolve_model(settings)
    synth = Synthesizer(settings)
    store = ArtifactStore(settings.artifact_root)
    servicer = SynthServicer(synth, store)
    registrars = [(SERVICE_NAME, lambda server: synth_pb2_grpc.add_SynthServiceServicer_to_server(servicer, server))]
    consumer = EventConsumer(
        service="synth",
        topics=[Topic.SYNTHESIS_REQUESTED],
        expected=events_pb2.SynthesisRequested,
        handler=make_handler(synth, store),
        kafka=settings.kafka,
        max_batch=settings.batch_size,
    )
    return registrars, [consumer], synth


def main() -> None:
    from vispod.common.logging import configure_logging
    from vispod.common.service import run_service

    settings = load_settings(SynthSettings)
    configure_logging(settings.service_name, settings.log_level)
    registrars, consumers, synth = build_service(settings)
    if synth.random_weights:
        log.warning("synth model %s has RANDOM weights: every output is marked random_weights=true", synth.model)
    run_service(settings, grpc_services=registrars, consumers=consumers)  # type: ignore[arg-type]
