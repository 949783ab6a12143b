"""The Kafka side: DialogueGenerated in, PodcastRendered out; a dialogue that cannot be rendered is a dead letter."""

from __future__ import annotations

from vispod.common.bus import Output
from vispod.common.events import Envelope
from vispod.common.topics import Topic
from vispod.v1 import common_pb2, events_pb2
from vispod.voice import metrics
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
        # A DialogueError is an InvalidArgument: the bus dead-letters the event with the reason.
        return [Output(Topic.PODCAST_RENDERED, self.podcaster.render_event("kafka", msg, voices))]
