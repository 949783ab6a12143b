"""What gRPC, Kafka and the CLI share: building the panel from settings, and judging one pair."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from vispod.common.images import PixelBudget
from vispod.judge.backends import JudgeBackend, JudgeImage, build_backend
from vispod.judge.images import prepare_images
from vispod.judge.protocol import JudgedVerdict, PairInput, Panel, photos_text
from vispod.judge.rubrics import load_rubric
from vispod.judge.settings import JudgeSettings
from vispod.v1 import common_pb2, events_pb2

log = logging.getLogger(__name__)


def dialogue_text(dialogue: common_pb2.Dialogue) -> str:
    """The transcript: `text` when set, else the turns rendered as 'Speaker: text' lines."""
    if dialogue.text.strip():
        return dialogue.text
    return "\n".join(f"{t.speaker or 'Speaker'}: {t.text}" for t in dialogue.turns if t.text.strip())


def judgement_of(a: events_pb2.DialogueGenerated, b: events_pb2.DialogueGenerated) -> events_pb2.JudgementCompleted:
    """The JudgementCompleted of a pair before its verdicts (gRPC and Kafka alike): the image set, a correlation
    id, both systems, both sides' labels (a's win) and the time."""
    out = events_pb2.JudgementCompleted(
        image_set_id=a.image_set_id or b.image_set_id,
        correlation_id=a.correlation_id or b.correlation_id,
        system_a=a.system,
        system_b=b.system,
    )
    out.completed_at.GetCurrentTime()
    out.labels.update(dict(b.labels))
    out.labels.update(dict(a.labels))
    return out


def pair_images(a: events_pb2.DialogueGenerated, b: events_pb2.DialogueGenerated) -> Sequence[common_pb2.ImageRef]:
    """The images the judges see for a pair: a's, else b's."""
    return a.images or b.images


def build_panel(settings: JudgeSettings, judges: Sequence[str] | None = None) -> Panel:
    backends: list[JudgeBackend] = [build_backend(spec, settings) for spec in (judges or settings.judges)]
    return Panel(backends, load_rubric(settings.rubric_version), settings.price_for, settings.max_concurrency)


class Comparer:
    """Judges pairs with a panel; fetches and bounds images for the judges that read them."""

    def __init__(self, settings: JudgeSettings, panel: Panel, fetcher: object | None = None) -> None:
        self.settings = settings
        self.panel = panel
        self.fetcher = fetcher  # vispod.common.images.ImageFetcher, or None to send no images

    def wants_images(self) -> bool:
        return (
            self.settings.send_images
            and self.settings.max_images > 0
            and self.fetcher is not None
            and any(b.accepts_images for b in self.panel.backends.values())
        )

    def pair_input(
        self, images: Sequence[common_pb2.ImageRef], text_a: str, text_b: str
    ) -> tuple[PairInput, list[str]]:
        """(what the judges see, warnings). An image that cannot be fetched is left out with a warning."""
        warnings: list[str] = []
        prepared: list[JudgeImage] = []
        if self.wants_images():
            budget = PixelBudget(self.fetcher.settings)  # type: ignore[union-attr]
            for ref in list(images)[: self.settings.max_images]:
                try:
                    # load = fetch + decode within the byte, pixel and format limits every service applies
                    img = self.fetcher.load(ref.uri, ref.sha256, budget)  # type: ignore[union-attr]
                    prepared += prepare_images(
                        [img],
                        max_images=1,
                        max_side=self.settings.max_image_side,
                        max_bytes=self.settings.max_image_bytes,
                    )
                except Exception as exc:
                    warnings.append(f"image {ref.uri[:120]} not sent: {exc}")
        captions = [ref.caption or ref.alt_text for ref in images]
        return PairInput(text_a, text_b, photos_text(captions, len(images)), tuple(prepared)), warnings

    def compare(
        self,
        images: Sequence[common_pb2.ImageRef],
        text_a: str,
        text_b: str,
        criteria: Sequence[str] | None = None,
        judges: Sequence[str] | None = None,
    ) -> list[JudgedVerdict]:
        pair, warnings = self.pair_input(images, text_a, text_b)
        for w in warnings:
            log.warning("image skipped", extra={"reason": w})
        return self.panel.compare(pair, list(criteria or self.settings.criteria), judges)
