"""gRPC VoiceService: Render (stored podcast) and StreamRender (audio turn by turn as it is made)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc

from vispod.v1 import voice_pb2, voice_pb2_grpc
from vispod.voice import metrics
from vispod.voice.podcast import Podcaster


class VoiceServicer(voice_pb2_grpc.VoiceServiceServicer):
    def __init__(self, podcaster: Podcaster) -> None:
        self.podcaster = podcaster

    def Render(self, request: voice_pb2.RenderRequest, context: grpc.ServicerContext) -> voice_pb2.RenderResponse:
        """The PodcastRendered the Kafka path would publish for the event."""
        return voice_pb2.RenderResponse(podcast=self.podcaster.render_event("grpc", request.generated,
                                                                            dict(request.voices)))

    def StreamRender(self, request: voice_pb2.RenderRequest,
                     context: grpc.ServicerContext) -> Iterator[voice_pb2.AudioChunk]:
        generated = request.generated
        p = self.podcaster.plan_counted("stream", generated.dialogue, dict(request.voices), generated.images)
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

