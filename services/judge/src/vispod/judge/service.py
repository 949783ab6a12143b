"""Wires the judge service: the panel, gRPC JudgeService, the pairing consumer and its timeout sweeper."""

from __future__ import annotations

from dataclasses import dataclass

from vispod.common.bus import EventConsumer, EventPublisher
from vispod.common.images import ImageFetcher
from vispod.common.service import GrpcService, Service, serve
from vispod.common.topics import Topic
from vispod.judge.judging import Comparer, build_panel
from vispod.judge.pairing import PairingHandler, TimeoutSweeper
from vispod.judge.servicer import JudgeServicer
from vispod.judge.settings import JudgeSettings
from vispod.judge.state import PairStore
from vispod.v1 import events_pb2


@dataclass
class Judge:
    """The judge's own objects (tests and tools reach them through `Service.app`)."""

    comparer: Comparer
    store: PairStore
    sweeper: TimeoutSweeper | None


def build(settings: JudgeSettings, comparer: Comparer | None = None) -> Service[Judge]:
    """What build makes it closes on shutdown; a `comparer` passed in stays the caller's to close."""
    owned = comparer is None
    comparer = comparer or Comparer(settings, build_panel(settings), ImageFetcher(settings.images))
    store = PairStore(settings.state_path())
    publisher = EventPublisher(settings.kafka, "judge") if settings.consume else None
    sweeper = TimeoutSweeper(settings, store, publisher) if publisher else None
    consumer = EventConsumer(
        service="judge",
        topics=[Topic.DIALOGUE_GENERATED],
        expected=events_pb2.DialogueGenerated,
        handler=PairingHandler(settings, comparer, store),
        kafka=settings.kafka,
        # Judging a pair takes minutes with API judges: few events per poll keeps the poll interval safe.
        max_batch=4,
        # Timeouts are swept by the consuming thread over the partitions it owns: one writer per pair.
        periodic=sweeper.sweep if sweeper else None,
        periodic_interval_s=settings.sweep_interval_s,
    )
    closers = [backend.close for backend in comparer.panel.backends.values()] if owned else []
    return Service(settings, Judge(comparer, store, sweeper), grpc=[GrpcService.of(JudgeServicer(comparer))],
                   consumers=[consumer], closers=[*closers, *([publisher.close] if publisher else [])])


def main() -> None:
    """`python -m vispod.judge`."""
    serve(JudgeSettings, build)
