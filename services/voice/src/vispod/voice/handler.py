"""The Kafka side: DialogueGenerated in, PodcastRendered out; a dialogue that cannot be rendered is a dead letter."""

from __future__ import annotations

from vispod.common.bus import InvalidEvent, Output
from vispod.common.events import Envelope
from vispod.common.topics import Topic
from vispod.v1 import common_pb2, events_pb2
from vispod.voice import metrics
from vispod.voice.dialogue import DialogueError
from vispod.voice.podcast import Podcaster


class RenderHandler:
    def __init__(self, podcaster: Podcaster) -> None:
        self.podcaster = podcaster

    def __call__(self, env: Envelope) -> list[Output]:
        msg: events_pb2.DialogueGenerated = env.message  # type: ignore[assignment]
        if msg.status == common_pb2.STATUS_FAILED:
            metrics.SKIPPED.inc()
            return []
        prefix = self.podcaster.settings.voice_label_prefix
        voices = {k[len(prefix):]: v for k, v in msg.labels.items() if k.startswith(prefix)}
        try:
            p = self.podcaster.plan(msg.dialogue, voices, msg.images)
        except DialogueError as exc:
            metrics.RENDERS.labels("kafka", "invalid").inc()
            raise InvalidEvent(str(exc)) from exc
        try:
            event = self.podcaster.render_stored(p, msg.image_set_id)
        except Exception:
            metrics.RENDERS.labels("kafka", "error").inc()
            raise
        event.correlation_id = msg.correlation_id
        event.system = msg.system
        event.labels.update(msg.labels)
        metrics.RENDERS.labels("kafka", "ok").inc()
        metrics.PODCAST_SECONDS.observe(event.duration_seconds)
        return [Output(Topic.PODCAST_RENDERED, event)]
