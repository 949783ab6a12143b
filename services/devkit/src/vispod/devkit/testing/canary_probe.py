"""Measuring an adapter canary from outside (tests, `make e2e-adapters`): the share of image sets it writes and
whether the gate rolls it back on a regression, against running services on a real broker.

    share = measure_canary_share(kafka, events, "pod@2")          # CanaryShare(share=0.105, sticky=True, ...)
    outcome = rollback_on_regression(kafka, "127.0.0.1:50051", "pod@2", "pod@1", samples=20)
    print(f"canary share {100 * share.share:.1f}%, rollback {'ok' if outcome.rolled_back else 'FAILED'}")

The regression is injected where the gate sees it: MetricsComputed events for canary and active traffic
(what the metrics service publishes per dialogue), the canary's CLIPScore `drop` points lower.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from vispod.common.bus import EventPublisher, EventReader
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic
from vispod.v1 import common_pb2, events_pb2, generator_pb2, generator_pb2_grpc

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


def inject_metrics(kafka: KafkaSettings, canary_id: str, active_id: str, samples: int, drop: float,
                   grounding: float = 30.0) -> float:
    """Publishes `samples` MetricsComputed for each side, interleaved (canary CLIPScore `drop` points lower);
    returns the monotonic time of the last one (the event that completes the evidence)."""
    publisher = EventPublisher(kafka, "metrics")
    try:
        for i in range(samples):
            jitter = (i % 5 - 2) * 0.1   # deterministic spread, no regression by itself
            for adapter_id, score in ((active_id, grounding), (canary_id, grounding - drop)):
                publisher.publish(Topic.METRICS_COMPUTED, events_pb2.MetricsComputed(
                    image_set_id=f"probe-{uuid.uuid4().hex[:12]}", adapter_id=adapter_id,
                    grounding=common_pb2.GroundingMetrics(clipscore=score + jitter),
                    style=common_pb2.StyleMetrics(words=800, repeated_4gram_rate=0.01)))
        return time.monotonic()
    finally:
        publisher.close()


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


def rollback_on_regression(kafka: KafkaSettings, generator_addr: str, canary_id: str, active_id: str,
                           samples: int = 20, drop: float = 6.0, timeout: float = 60.0) -> RollbackOutcome:
    """Injects a regression of `drop` CLIPScore points (`samples`: the gate's canary_min_samples) and waits for
    the gate's rollback to reach the generator."""
    since = inject_metrics(kafka, canary_id, active_id, samples, drop)
    return wait_canary_left(generator_addr, canary_id, since, timeout)
