"""Wires the voice service: one engine, gRPC VoiceService, the DialogueGenerated consumer."""

from __future__ import annotations

from vispod.common.bus import EventConsumer
from vispod.common.service import GrpcService, Service, serve
from vispod.common.topics import Topic
from vispod.v1 import events_pb2
from vispod.voice.engines import Engine, build_engine
from vispod.voice.handler import RenderHandler
from vispod.voice.podcast import Podcaster
from vispod.voice.servicer import VoiceServicer
from vispod.voice.settings import VoiceSettings


def build(settings: VoiceSettings, engine: Engine | None = None) -> Service[Podcaster]:
    """What build makes it closes on shutdown; an `engine` passed in stays the caller's to close."""
    podcaster = Podcaster(engine or build_engine(settings), settings)
    consumer = EventConsumer(
        service="voice",
        topics=[Topic.DIALOGUE_GENERATED],
        expected=events_pb2.DialogueGenerated,
        handler=RenderHandler(podcaster),
        kafka=settings.kafka,
        # Rendering takes seconds to minutes: one event per poll keeps the poll interval safe
        # (settings.max_chars bounds the longest render; see the README).
        max_batch=1,
    )
    return Service(settings, podcaster, grpc=[GrpcService.of(VoiceServicer(podcaster))], consumers=[consumer],
                   closers=[] if engine else [podcaster.engine.close])


def main() -> None:
    """`python -m vispod.voice`."""
    serve(VoiceSettings, build)
