"""Wires the generator service: backend, adapter registry, gRPC servicer and the two Kafka consumers."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from vispod.common.bus import EventConsumer, EventPublisher, Output
from vispod.common.events import Envelope
from vispod.common.images import ImageFetcher
from vispod.common.service import Service, serve
from vispod.common.topics import Topic
from vispod.generator.adapters.wiring import (
    after_replay,
    build_registry,
    hand_over_when_replayed,
    held_watch,
    registry_consumers,
)
from vispod.generator.backends import Backend, make_backend
from vispod.generator.engine import Generator
from vispod.generator.servicer import GeneratorServicer, grpc_service
from vispod.generator.settings import GeneratorSettings
from vispod.v1 import events_pb2

log = logging.getLogger(__name__)


def imageset_handler(generator: Generator):
    """ImageSetSubmitted → DialogueGenerated. A bad request raises InvalidArgument (→ DLQ at once); an
    unreachable engine raises Unavailable, so the bus retries and finally dead-letters the event (replayable)
    instead of publishing a false failure."""

    def handle(env: Envelope) -> Iterable[Output]:
        event: events_pb2.ImageSetSubmitted = env.message  # type: ignore[assignment]
        return [Output(Topic.DIALOGUE_GENERATED, generator.generate(event, job=generator.prepare(event)))]

    return handle


def consumers(settings: GeneratorSettings, generator: Generator) -> list[EventConsumer]:
    s = settings
    # The adapter registry's topics, read whole by every replica (no per-pod consumer group): see adapters.wiring.
    adapters = registry_consumers(s, generator.registry)
    hand_over_when_replayed(generator.registry, adapters)   # the engine gets the held set once, when caught up
    # The work: one stable consumer group for the Deployment; it waits until the registry has caught up.
    work = EventConsumer(
        service="generator", topics=[Topic.IMAGESET_SUBMITTED], expected=events_pb2.ImageSetSubmitted,
        handler=after_replay(imageset_handler(generator), adapters), kafka=s.kafka, concurrency=s.concurrency,
        # Backpressure: take no more events per poll than can be generated at once.
        max_batch=s.concurrency, instance_id=s.instance_id,
    )
    return [work, *adapters]


def build(settings: GeneratorSettings, backend: Backend | None = None,
          with_publisher: bool = True) -> Service[Generator]:
    """The generator service; `app` is the Generator (its backend and adapter registry hang off it).
    What build makes it closes on shutdown; a `backend` passed in stays the caller's to close."""
    owned = [] if backend else [backend := make_backend(settings)]
    publisher = EventPublisher(settings.kafka, "generator") if with_publisher else None
    registry = build_registry(settings, backend, publisher)
    generator = Generator(settings, backend, registry, ImageFetcher(settings.images))
    loaded = generator.perceiver.models     # perception's models load before the service reports ready
    log.info("perception models", extra={"models": [m.name for m in loaded]})
    return Service(settings, generator, grpc=[grpc_service(GeneratorServicer(generator))],
                   consumers=consumers(settings, generator), tasks=[held_watch(registry)],
                   closers=[*(b.close for b in owned), *([publisher.close] if publisher else [])])


def main() -> None:
    """`python -m vispod.generator`."""
    serve(GeneratorSettings, build)
