"""Wires the judge service: the panel, gRPC JudgeService, the pairing consumer and the timeout sweeper."""

from __future__ import annotations

from dataclasses import dataclass

from vispod.common.bus import EventConsumer, EventPublisher
from vispod.common.images import ImageFetcher
from vispod.common.service import ServiceHandle, run_service, start_service
from vispod.common.topics import Topic
from vispod.judge.judging import Comparer, build_panel
from vispod.judge.pairing import PairingHandler, TimeoutSweeper
from vispod.judge.servicer import JudgeServicer, registrar
from vispod.judge.settings import JudgeSettings
from vispod.judge.state import PairStore
from vispod.v1 import events_pb2


@dataclass
class JudgeApp:
    settings: JudgeSettings
    comparer: Comparer
    store: PairStore
    consumer: EventConsumer
    sweeper: TimeoutSweeper | None
    publisher: EventPublisher | None

    @classmethod
    def build(cls, settings: JudgeSettings, comparer: Comparer | None = None) -> JudgeApp:
        comparer = comparer or Comparer(settings, build_panel(settings), ImageFetcher(settings.images))
        store = PairStore(settings.state_path())
        publisher = sweeper = None
        if settings.consume:
            publisher = EventPublisher(settings.kafka, "judge")
            sweeper = TimeoutSweeper(settings, store, publisher)
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
        return cls(settings, comparer, store, consumer, sweeper, publisher)

    def start(self) -> ServiceHandle:
        """Starts in-process (tests); stop with `stop(handle)`."""
        return start_service(
            self.settings, grpc_services=[registrar(JudgeServicer(self.comparer))], consumers=[self.consumer]
        )

    def stop(self, handle: ServiceHandle) -> None:
        handle.stop()
        self.close()

    def close(self) -> None:
        if self.publisher:
            self.publisher.close()
        for backend in self.comparer.panel.backends.values():
            backend.close()

    def run(self) -> None:
        """Blocks until SIGTERM/SIGINT."""
        try:
            run_service(
                self.settings, grpc_services=[registrar(JudgeServicer(self.comparer))], consumers=[self.consumer]
            )
        finally:
            self.close()


def main(settings: JudgeSettings) -> None:
    JudgeApp.build(settings).run()
