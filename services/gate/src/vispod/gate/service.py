"""The gate service: consumes vispod.adapter.published (its own group), decides, publishes lifecycle events; with a
canary share, also live dialogues (vispod.dialogue.generated, group <prefix>.gate.canary) and, replayed at start, its
own saved canary progress (vispod.gate.canary).

No gRPC API of its own; the metrics endpoint (/metrics, readiness tied to the consumer) is served on
settings.metrics_port. One event at a time (max_batch=1): an evaluation takes minutes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vispod.common.bus import EventConsumer, EventPublisher
from vispod.common.service import Service, serve
from vispod.common.topics import Topic
from vispod.gate.canary import CanaryMonitor, CanaryPolicy
from vispod.gate.clients import Clients
from vispod.gate.evalset import Story, load_eval_set, write_builtin_set
from vispod.gate.gate import Gate
from vispod.gate.sequential import SignTest
from vispod.gate.settings import GateSettings
from vispod.v1 import events_pb2

log = logging.getLogger(__name__)

SERVICE = "gate"


def eval_stories(settings: GateSettings) -> list[Story]:
    """The configured evaluation set; without one, a small synthetic set (a smoke test, not a quality bar)."""
    if settings.eval_set is not None:
        return load_eval_set(settings.eval_set, settings.max_stories)
    root = Path(settings.artifact_root) / "gate" / "builtin-set"
    log.warning("no VISPOD_GATE_EVAL_SET configured: evaluating on the built-in synthetic set",
                extra={"set": str(root)})
    if not root.is_dir():
        write_builtin_set(root)
    return load_eval_set(root, settings.max_stories)


def build(settings: GateSettings, clients: Clients | None = None) -> Service[Gate]:
    """What build makes it closes on shutdown; `clients` passed in stay the caller's to close."""
    owned = clients is None
    clients = clients or Clients(settings.generator_addr, settings.metrics_addr, settings.judge_addr,
                                 tls=settings.grpc_tls)
    gate = Gate(settings, clients, eval_stories(settings))
    consumer = EventConsumer(service=SERVICE, topics=[Topic.ADAPTER_PUBLISHED], expected=events_pb2.AdapterPublished,
                             handler=gate.handle, kafka=settings.kafka,
                             group_id=f"{settings.kafka.topic_prefix}.{SERVICE}", max_batch=1)
    consumers, closers = [consumer], [clients.close] if owned else []
    if settings.canary_share > 0:
        publisher = EventPublisher(settings.kafka, SERVICE)
        closers.append(publisher.close)
        consumers += canary_consumers(settings, canary_monitor(settings, clients, gate.signer, publisher))
    return Service(settings, gate, consumers=consumers, closers=closers)


def canary_monitor(settings: GateSettings, clients: Clients, signer, publisher: EventPublisher | None = None
                   ) -> CanaryMonitor:
    s = settings
    policy = CanaryPolicy(SignTest(s.canary_alpha, s.canary_beta, s.canary_p_worse), s.canary_min_samples,
                          s.canary_max_error_rise, s.canary_max_latency_ratio, s.canary_max_duration_s)
    reject = events_pb2.ADAPTER_STATE_REJECTED if s.reject_action == "reject" else events_pb2.ADAPTER_STATE_CANDIDATE
    return CanaryMonitor(clients.generator, clients.metrics, policy, signer, reject, s.canary_refresh_s,
                         min(10.0, s.rpc_timeout_s), publisher)


def canary_consumers(settings: GateSettings, monitor: CanaryMonitor) -> list[EventConsumer]:
    """The saved progress, read whole at start (no group), then the live dialogues (one stable group), which wait
    for it: a restarted gate goes on from the evidence its committed offsets account for."""
    saved = EventConsumer(service=SERVICE, topics=[Topic.GATE_CANARY], expected=events_pb2.CanaryProgress,
                          handler=monitor.restore, kafka=settings.kafka, replay=True)
    monitor.ready = saved.caught_up
    live = EventConsumer(service=SERVICE, topics=[Topic.DIALOGUE_GENERATED], expected=events_pb2.DialogueGenerated,
                         handler=monitor.handle, kafka=settings.kafka,
                         group_id=f"{settings.kafka.topic_prefix}.{SERVICE}.canary",
                         periodic=monitor.tick, periodic_interval_s=settings.canary_tick_s)
    return [saved, live]


def main() -> None:
    """`python -m vispod.gate`."""
    serve(GateSettings, build)
