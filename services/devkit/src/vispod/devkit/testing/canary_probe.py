"""Measuring an adapter canary from outside (tests, `make e2e-adapters`): the share of image sets it writes and
whether the gate rolls it back on a regression, against running services on a real broker.

    share = measure_canary_share(kafka, events, "pod@2")          # CanaryShare(share=0.105, sticky=True, ...)
    addr, server = serve_scores({"pod@2": 0.30, "pod@1": 0.05})  # the gate's metrics address: pod@2 regresses
    outcome = traffic_until_decided(kafka, "127.0.0.1:50051", "pod@2", more_events)
    print(f"canary share {100 * share.share:.1f}%, rollback {'ok' if outcome.rolled_back else 'FAILED'}")

The regression is made where the gate measures it: the metrics service the gate calls to score live dialogues
(`ScoredByAdapter`), never forged MetricsComputed events, which the gate does not read.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass

import grpc

from vispod.common.bus import EventPublisher, EventReader
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic
from vispod.v1 import common_pb2, events_pb2, generator_pb2, generator_pb2_grpc, metrics_pb2, metrics_pb2_grpc

S = events_pb2.AdapterState


@dataclass(frozen=True)
class CanaryShare:
    n: int                 # image sets measured
    canary: int            # of them written by the canary
    share: float
    sticky: bool           # every re-submitted image set was written by the same adapter again
    by_set: dict[str, str]  # image set id -> adapter id ("" for the base model)


def measure_canary_share(kafka: KafkaSettings, events: Sequence[events_pb2.ImageSetSubmitted], canary_id: str,
                         resubmit: int = 50, timeout: float = 600.0) -> CanaryShare:
    """Submits the image sets (default routing: no `adapter` set), reads which adapter wrote each, then submits
    the first `resubmit` again and checks they land on the same side."""
    ids = [e.image_set_id for e in events]
    if len(set(ids)) != len(ids) or any(e.adapter for e in events):
        raise ValueError("distinct image sets with default routing (no adapter named) are needed")
    reader = EventReader(kafka, [Topic.DIALOGUE_GENERATED], from_beginning=False)
    publisher = EventPublisher(kafka, "canary-probe")
    try:
        first = _run(publisher, reader, events, timeout)
        again = _run(publisher, reader, events[:resubmit], timeout)
    finally:
        publisher.close()
        reader.close()
    canary = sum(1 for a in first.values() if a == canary_id)
    return CanaryShare(len(first), canary, canary / len(first), all(again[i] == first[i] for i in again), first)


def _run(publisher: EventPublisher, reader: EventReader, events: Sequence[events_pb2.ImageSetSubmitted],
         timeout: float) -> dict[str, str]:
    wanted = {e.image_set_id for e in events}
    for e in events:
        publisher.publish(Topic.IMAGESET_SUBMITTED, e)
    got: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while wanted - got.keys() and time.monotonic() < deadline:
        for env in reader.read(len(wanted - got.keys()), timeout=min(30.0, deadline - time.monotonic()),
                               where=lambda e: e.message.image_set_id in wanted):
            if env.message.status != common_pb2.STATUS_OK:
                raise RuntimeError(f"image set {env.message.image_set_id} failed: {env.message.error}")
            got[env.message.image_set_id] = env.message.adapter_id
    if wanted - got.keys():
        raise TimeoutError(f"{len(wanted - got.keys())} of {len(wanted)} image sets were not written in {timeout:g} s")
    return got


@dataclass(frozen=True)
class RollbackOutcome:
    rolled_back: bool
    seconds: float     # from the decisive metrics event to the generator no longer routing to the canary
    state: str         # the canary's state at the generator afterwards
    active: str        # the active adapter afterwards


class ScoredByAdapter(metrics_pb2_grpc.MetricsServiceServicer):
    """A metrics service whose repeated-4-gram rate depends only on the adapter that wrote the dialogue: a
    regression (or an improvement) made to order where the gate measures it, through its own Score calls."""

    def __init__(self, repetition: dict[str, float], default: float = 0.05) -> None:
        self.repetition, self.default = repetition, default

    def Score(self, request, context):
        rate = self.repetition.get(request.generated.adapter_id, self.default)
        return metrics_pb2.ScoreResponse(result=events_pb2.MetricsComputed(
            adapter_id=request.generated.adapter_id, style=common_pb2.StyleMetrics(repeated_4gram_rate=rate)))


def serve_scores(repetition: dict[str, float]) -> tuple[str, grpc.Server]:
    """A ScoredByAdapter on 127.0.0.1 (an ephemeral port): (address, server to stop)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    metrics_pb2_grpc.add_MetricsServiceServicer_to_server(ScoredByAdapter(repetition), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return f"127.0.0.1:{port}", server


def traffic_until_decided(kafka: KafkaSettings, generator_addr: str, canary_id: str,
                          events: Sequence[events_pb2.ImageSetSubmitted], batch: int = 20,
                          timeout: float = 120.0) -> RollbackOutcome:
    """Submits image sets (default routing) a batch at a time, as live traffic, until the generator no longer
    routes to the canary (the gate decided) or the events run out."""
    started = time.monotonic()
    reader = EventReader(kafka, [Topic.DIALOGUE_GENERATED], from_beginning=False)
    publisher = EventPublisher(kafka, "canary-probe")
    try:
        for i in range(0, len(events), batch):
            _run(publisher, reader, events[i:i + batch], timeout)
            outcome = wait_canary_left(generator_addr, canary_id, time.monotonic(), timeout=2.0)
            if outcome.rolled_back or outcome.state != "CANARY":
                return RollbackOutcome(outcome.rolled_back, time.monotonic() - started, outcome.state,
                                       outcome.active)
        return wait_canary_left(generator_addr, canary_id, time.monotonic(), timeout=10.0)
    finally:
        publisher.close()
        reader.close()


def wait_canary_left(generator_addr: str, canary_id: str, since: float, timeout: float = 60.0) -> RollbackOutcome:
    """Polls the generator until the adapter is no longer CANARY (or the timeout)."""
    channel = grpc.insecure_channel(generator_addr)
    stub = generator_pb2_grpc.GeneratorServiceStub(channel)
    try:
        deadline = since + timeout
        while True:
            listing = stub.ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=10)
            state = next((a.state for a in listing.adapters if a.adapter_id == canary_id), S.ADAPTER_STATE_UNSPECIFIED)
            now = time.monotonic()
            if state != S.ADAPTER_STATE_CANARY or now >= deadline:
                name = S.Name(state).removeprefix("ADAPTER_STATE_")
                return RollbackOutcome(state != S.ADAPTER_STATE_CANARY and listing.active_adapter_id != canary_id,
                                       now - since, name, listing.active_adapter_id)
            time.sleep(0.05)
    finally:
        channel.close()
