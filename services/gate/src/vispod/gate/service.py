"""The gate service: consumes vispod.adapter.published (its own group), decides, publishes lifecycle events.

No gRPC API of its own; the metrics endpoint (/metrics, readiness tied to the consumer) is served on
settings.metrics_port. One event at a time (max_batch=1): an evaluation takes minutes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vispod.common.bus import EventConsumer
from vispod.common.service import Service, serve
from vispod.common.topics import Topic
from vispod.gate.canary import Bands, CanaryMonitor
from vispod.gate.clients import Clients
from vispod.gate.evalset import Story, load_eval_set, write_builtin_set
from vispod.gate.gate import Gate
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
    consumers = [consumer]
    if settings.canary_share > 0:  # the canary's live metrics: one stable group for the Deployment
        consumers.append(EventConsumer(
            service=SERVICE, topics=[Topic.METRICS_COMPUTED], expected=events_pb2.MetricsComputed,
            handler=canary_monitor(settings, clients, gate.signer).handle, kafka=settings.kafka,
            group_id=f"{settings.kafka.topic_prefix}.{SERVICE}.canary"))
    return Service(settings, gate, consumers=consumers, closers=[clients.close] if owned else [])


def canary_monitor(settings: GateSettings, clients: Clients, signer) -> CanaryMonitor:
    bands = Bands(settings.canary_min_samples, settings.canary_promote_after, settings.canary_max_grounding_drop,
                  settings.canary_max_repetition_rise)
    reject = events_pb2.ADAPTER_STATE_REJECTED if settings.reject_action == "reject" else \
        events_pb2.ADAPTER_STATE_CANDIDATE
    return CanaryMonitor(clients.generator, bands, signer, reject, settings.canary_refresh_s,
                         min(10.0, settings.rpc_timeout_s))


def main() -> None:
    """`python -m vispod.gate`."""
    serve(GateSettings, build)
