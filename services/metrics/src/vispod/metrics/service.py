"""The metrics service: gRPC MetricsService.Score and the Kafka flow dialogue.generated -> metrics.computed (the
same DialogueGenerated in, the same MetricsComputed out, built by `metrics_computed`)."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from vispod.common.bus import EventConsumer, Output
from vispod.common.errors import InvalidArgument
from vispod.common.events import Envelope
from vispod.common.service import GrpcService, Service, serve
from vispod.common.topics import Topic
from vispod.metrics import prom
from vispod.metrics.caption_grounding import CaptionGrounder, model_dir
from vispod.metrics.scoring import DialogueScorer, ScoreOutcome, build_grounding, observe
from vispod.metrics.settings import MetricsSettings
from vispod.v1 import common_pb2, events_pb2, metrics_pb2, metrics_pb2_grpc

if TYPE_CHECKING:
    from vispod.metrics.grounding import GroundingScorer

log = logging.getLogger(__name__)

# Image sets remembered as distractors for the event flow's retrieval accuracy.
DISTRACTOR_SETS = 8


class MetricsServicer(metrics_pb2_grpc.MetricsServiceServicer):
    def __init__(self, scorer: DialogueScorer) -> None:
        self.scorer = scorer

    def Score(self, request: metrics_pb2.ScoreRequest, context: grpc.ServicerContext) -> metrics_pb2.ScoreResponse:
        """The MetricsComputed the Kafka path would publish for the event (input checked strictly)."""
        event = request.generated
        try:
            outcome = self.scorer.score(event.dialogue, event.images, request.distractors, strict=True, path="grpc",
                                        prompt=request.prompt)
        except InvalidArgument:
            prom.SCORED.labels("grpc", "invalid").inc()
            raise
        prom.SCORED.labels("grpc", "ok").inc()
        return metrics_pb2.ScoreResponse(result=metrics_computed(event, outcome))


class DialogueHandler:
    """Kafka handler: one DialogueGenerated in, one MetricsComputed out (none for FAILED generations)."""

    def __init__(self, scorer: DialogueScorer, settings: MetricsSettings) -> None:
        self.scorer = scorer
        self.systems = prom.BoundedLabels(settings.max_system_labels)
        self._recent: OrderedDict[str, list[common_pb2.ImageRef]] = OrderedDict()
        self._lock = threading.Lock()

    def _distractors(self, image_set_id: str, images: Sequence[common_pb2.ImageRef]) -> list[common_pb2.ImageRef]:
        """Images of other recently seen sets (their embeddings are usually cached), then remember this set."""
        own = {ref.uri for ref in images}
        with self._lock:
            pool = [ref for key, refs in self._recent.items() if key != image_set_id for ref in refs
                    if ref.uri not in own]
            self._recent[image_set_id] = list(images)
            self._recent.move_to_end(image_set_id)
            while len(self._recent) > DISTRACTOR_SETS:
                self._recent.popitem(last=False)
        return pool[-self.scorer.settings.max_distractors:] if self.scorer.settings.max_distractors else []

    def __call__(self, envelope: Envelope) -> list[Output]:
        event = envelope.message
        if not isinstance(event, events_pb2.DialogueGenerated):
            raise InvalidArgument(f"expected DialogueGenerated, got {type(event).__name__}")
        system = self.systems(event.system)
        if event.status == common_pb2.STATUS_FAILED:
            prom.FAILED_DIALOGUES.labels(system).inc()
            log.info("skipping failed generation", extra={"image_set_id": event.image_set_id})
            return []
        try:
            self.scorer.validate(event.dialogue, event.images)
            distractors = self._distractors(event.image_set_id, event.images)
            outcome = self.scorer.score(event.dialogue, event.images, distractors, strict=False, path="kafka")
        except InvalidArgument:
            prom.SCORED.labels("kafka", "invalid").inc()
            raise
        prom.SCORED.labels("kafka", "ok").inc()
        computed = metrics_computed(event, outcome)
        observe(computed, system)
        return [Output(Topic.METRICS_COMPUTED, computed)]


def metrics_computed(event: events_pb2.DialogueGenerated, outcome: ScoreOutcome) -> events_pb2.MetricsComputed:
    computed_at = Timestamp()
    computed_at.GetCurrentTime()
    warnings = list(outcome.warnings)
    if event.random_weights:
        warnings.append("the dialogue was written by a model with random weights")
    out = events_pb2.MetricsComputed(
        image_set_id=event.image_set_id, correlation_id=event.correlation_id, system=event.system,
        adapter_id=event.adapter_id, model=event.model, style=outcome.style.to_proto(),
        paper_style=outcome.paper_style.to_proto(), labels=dict(event.labels), computed_at=computed_at,
        warnings=warnings,
    )
    out.format.CopyFrom(outcome.format.to_proto())
    for name in ("grounding", "hallucination", "aligned_grounding", "naturalness"):
        part = getattr(outcome, name)
        if part is not None:
            getattr(out, name).CopyFrom(part.to_proto())
    return out


def build(settings: MetricsSettings, grounding: GroundingScorer | None = None,
          text_model: CaptionGrounder | None = None) -> Service[DialogueScorer]:
    """The metrics service (`grounding` and `text_model` may be shared, e.g. by tests); `app` is its
    DialogueScorer."""
    if text_model is None and settings.text_model_enabled:
        model_dir()  # fail at start-up, naming the package, when the MiniLM weights are not installed
        text_model = CaptionGrounder()  # loads on first use
    scorer = DialogueScorer(settings, grounding if grounding is not None else build_grounding(settings),
                            text_model=text_model if settings.text_model_enabled else None)
    consumer = EventConsumer(service="metrics", topics=[Topic.DIALOGUE_GENERATED],
                             expected=events_pb2.DialogueGenerated, handler=DialogueHandler(scorer, settings),
                             kafka=settings.kafka, max_batch=4)
    return Service(settings, scorer, grpc=[GrpcService.of(MetricsServicer(scorer))], consumers=[consumer])


def main() -> None:
    """`python -m vispod.metrics`."""
    serve(MetricsSettings, build)
