"""Wires the voice service: one engine, gRPC VoiceService, the DialogueGenerated consumer."""

from __future__ import annotations

from typing import Any

from vispod.common.bus import EventConsumer
from vispod.common.service import ServiceHandle, run_service, start_service
from vispod.common.topics import Topic
from vispod.v1 import events_pb2
from vispod.voice.engines import Engine, build_engine
from vispod.voice.handler import RenderHandler
from vispod.voice.podcast import Podcaster
from vispod.voice.servicer import VoiceServicer, registrar
from vispod.voice.settings import VoiceSettings


def _parts(settings: VoiceSettings, engine: Engine | None) -> tuple[Podcaster, dict[str, Any]]:
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
    return podcaster, {"grpc_services": [registrar(VoiceServicer(podcaster))], "consumers": [consumer]}


def start(settings: VoiceSettings, engine: Engine | None = None) -> ServiceHandle:
    """Starts in-process (tests); stop with handle.stop()."""
    _, parts = _parts(settings, engine)
    return start_service(settings, **parts)


def main(settings: VoiceSettings) -> None:
    podcaster, parts = _parts(settings, None)
    try:
        run_service(settings, **parts)
    finally:
        podcaster.engine.close()
