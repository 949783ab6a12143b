"""Wires the generator service: backend, adapter registry, gRPC servicer and the two Kafka consumers."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from vispod.common.bus import EventConsumer, EventPublisher, InvalidEvent, Output
from vispod.common.events import Envelope
from vispod.common.images import ImageFetcher
from vispod.common.service import ServiceHandle, run_service, start_service
from vispod.common.topics import Topic
from vispod.generator.adapters import AdapterRegistry, ArtifactFetcher
from vispod.generator.backends import Backend, make_backend
from vispod.generator.engine import Generator
from vispod.generator.servicer import GeneratorServicer, registrar
from vispod.generator.settings import GeneratorSettings
from vispod.v1 import events_pb2

log = logging.getLogger(__name__)


def imageset_handler(generator: Generator):
    """ImageSetSubmitted → DialogueGenerated. Bad requests → DLQ (InvalidEvent); an unreachable engine raises,
    so the bus retries and finally dead-letters the event (replayable) instead of publishing a false failure."""

    def handle(env: Envelope) -> Iterable[Output]:
        event: events_pb2.ImageSetSubmitted = env.message  # type: ignore[assignment]
        try:
            job = generator.prepare(event)
        except ValueError as exc:  # InvalidArgument, ImageAccessError
            raise InvalidEvent(str(exc)) from exc
        result = generator.generate(event, job=job)
        return [Output(Topic.DIALOGUE_GENERATED, result)]

    return handle


@dataclass
class GeneratorApp:
    settings: GeneratorSettings
    backend: Backend
    registry: AdapterRegistry
    generator: Generator
    publisher: EventPublisher | None

    def consumers(self) -> list[EventConsumer]:
        s = self.settings
        work = EventConsumer(
            service="generator", topics=[Topic.IMAGESET_SUBMITTED], expected=events_pb2.ImageSetSubmitted,
            handler=imageset_handler(self.generator), kafka=s.kafka, concurrency=s.concurrency,
            # Backpressure: take no more events per poll than can be generated at once.
            max_batch=s.concurrency, instance_id=s.instance_id,
        )
        # Every replica must see every adapter: a consumer group of its own per instance.
        adapters = EventConsumer(
            service="generator", topics=[Topic.ADAPTER_PUBLISHED], expected=events_pb2.AdapterPublished,
            handler=self.registry.handle_published, kafka=s.kafka,
            group_id=f"{s.kafka.topic_prefix}.generator.adapters.{s.instance_id}", instance_id=s.instance_id,
        )
        # Decisions made elsewhere (the promotion gate, an admin call on another replica).
        lifecycle = EventConsumer(
            service="generator", topics=[Topic.ADAPTER_LIFECYCLE], expected=events_pb2.AdapterLifecycleChanged,
            handler=self.registry.handle_lifecycle, kafka=s.kafka,
            group_id=f"{s.kafka.topic_prefix}.generator.lifecycle.{s.instance_id}", instance_id=s.instance_id,
        )
        return [work, adapters, lifecycle]

    def grpc_services(self):
        return [registrar(GeneratorServicer(self.generator))]

    def close(self) -> None:
        self.backend.close()
        if self.publisher:
            self.publisher.close()


def build_app(settings: GeneratorSettings, backend: Backend | None = None, with_publisher: bool = True) -> GeneratorApp:
    backend = backend or make_backend(settings)
    publisher = EventPublisher(settings.kafka, "generator") if with_publisher else None
    registry = AdapterRegistry(
        settings.adapter_state_dir, settings.adapter_cache_dir, settings.resolved_base_model_id(),
        servable=backend.servable, on_loaded=backend.on_adapter_loaded, publisher=publisher,
        on_retired=backend.on_adapter_retired,
        # Adapters are fetched only from the artifact store, never from arbitrary paths an event names.
        artifact_fetcher=ArtifactFetcher(file_roots=[settings.artifact_root]),
    )
    generator = Generator(settings, backend, registry, ImageFetcher(settings.images))
    return GeneratorApp(settings, backend, registry, generator, publisher)


def start(settings: GeneratorSettings, backend: Backend | None = None) -> tuple[GeneratorApp, ServiceHandle]:
    """In-process service (tests, benchmarks)."""
    app = build_app(settings, backend)
    handle = start_service(settings, grpc_services=app.grpc_services(), consumers=app.consumers())
    return app, handle


def main(settings: GeneratorSettings) -> None:
    app = build_app(settings)
    try:
        run_service(settings, grpc_services=app.grpc_services(), consumers=app.consumers())
    finally:
        app.close()
