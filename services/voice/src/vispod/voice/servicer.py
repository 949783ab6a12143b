"""gRPC VoiceService: Render (stored podcast) and StreamRender (audio turn by turn as it is made)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc

from vispod.v1 import voice_pb2, voice_pb2_grpc
from vispod.voice import metrics
from vispod.voice.dialogue import Plan
from vispod.voice.podcast import Podcaster


class VoiceServicer(voice_pb2_grpc.VoiceServiceServicer):
    def __init__(self, podcaster: Podcaster) -> None:
        self.podcaster = podcaster

    def _plan(self, request: voice_pb2.RenderRequest, path: str) -> Plan:
        return self.podcaster.plan_counted(path, request.dialogue, dict(request.voices), request.images)

    def Render(self, request: voice_pb2.RenderRequest, context: grpc.ServicerContext) -> voice_pb2.RenderResponse:
        event = self.podcaster.render_counted("grpc", self._plan(request, "grpc"), request.image_set_id)
        event.correlation_id = request.correlation_id
        return voice_pb2.RenderResponse(podcast=event)

    def StreamRender(self, request: voice_pb2.RenderRequest,
                     context: grpc.ServicerContext) -> Iterator[voice_pb2.AudioChunk]:
        p = self._plan(request, "stream")
        started = time.monotonic()
        try:
            for i, chunk in enumerate(self.podcaster.stream(p)):
                if i == 0:
                    metrics.FIRST_AUDIO_SECONDS.observe(time.monotonic() - started)
                if not context.is_active():  # the caller went away: stop synthesising
                    return
                yield chunk
        except Exception:
            metrics.RENDERS.labels("stream", "error").inc()
            raise
        metrics.RENDERS.labels("stream", "ok").inc()

