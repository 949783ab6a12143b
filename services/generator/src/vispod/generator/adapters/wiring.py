"""How the generator service builds its adapter registry and the consumers that keep it, from settings.

Restart-safe: the registry's truth is on the bus, not on the pod. `adapter.published` and `adapter.lifecycle`
are compacted topics (the latest record per adapter kept for ever) that every replica reads whole at start
(`replay`: no consumer group, so nothing is named after a pod and no committed offset can skip the history),
then follows. A rescheduled pod with an empty disk re-fetches and re-verifies every adapter and re-applies
every signed decision, so it serves the same active adapter; generation waits until that replay is done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from vispod.common.bus import EventConsumer, EventPublisher, Output
from vispod.common.events import Envelope
from vispod.common.service import Task
from vispod.common.signing import Keyring, Signer
from vispod.common.topics import Topic
from vispod.generator.adapters.registry import AdapterRegistry
from vispod.generator.adapters.verify import ArtifactFetcher
from vispod.v1 import events_pb2

log = logging.getLogger(__name__)


class RegistryReplaying(RuntimeError):
    """Transient: the bus retries the event once the registry has caught up."""


def load_keys(keys_dir: Path | None, admin_key_file: Path | None) -> tuple[Keyring | None, Signer | None]:
    """The trusted lifecycle public keys (`<identity>.pub` files) and the optional admin signing key."""
    keyring = Keyring.from_dir(keys_dir) if keys_dir is not None else None
    signer = Signer.from_file(admin_key_file, "admin") if admin_key_file is not None else None
    if keyring is None:
        log.warning("no lifecycle public keys configured (VISPOD_GENERATOR_LIFECYCLE_KEYS_DIR): "
                    "lifecycle commands from the bus are dead-lettered, only admin gRPC calls change state")
    return keyring, signer


def build_registry(settings, backend, publisher: EventPublisher | None) -> AdapterRegistry:
    """`settings`: GeneratorSettings; `backend`: the generator backend (servable / load / retire hooks)."""
    keyring, signer = load_keys(settings.lifecycle_keys_dir, settings.admin_key_file)
    return AdapterRegistry(
        settings.adapter_state_dir, settings.adapter_cache_dir, settings.resolved_base_model_id(),
        servable=backend.servable, on_loaded=backend.on_adapter_loaded, publisher=publisher,
        on_retired=backend.on_adapter_retired,
        # Adapters are fetched only from the artifact store, never from arbitrary paths an event names.
        artifact_fetcher=ArtifactFetcher(file_roots=[settings.artifact_root]),
        default_canary_share=settings.canary_share, keyring=keyring, signer=signer,
        command_max_age_s=settings.lifecycle_max_age_s,
        on_held=getattr(backend, "hold", None), candidate_slots=settings.adapter_candidate_slots,
        base_model_digest=settings.base_model_digest,
    )


def registry_consumers(settings, registry: AdapterRegistry) -> list[EventConsumer]:
    """Every replica reads both state topics whole (replay): each must know every adapter and decision."""
    common = dict(service="generator", kafka=settings.kafka, instance_id=settings.instance_id, replay=True)
    return [
        EventConsumer(topics=[Topic.ADAPTER_PUBLISHED], expected=events_pb2.AdapterPublished,
                      handler=registry.handle_published, **common),
        # Decisions made elsewhere (the promotion gate, an admin), obeyed when signed.
        EventConsumer(topics=[Topic.ADAPTER_LIFECYCLE], expected=events_pb2.AdapterLifecycleChanged,
                      handler=registry.handle_lifecycle, **common),
    ]


def hand_over_when_replayed(registry: AdapterRegistry, consumers: Sequence[EventConsumer]) -> threading.Thread:
    """Once every state topic is read to its end, the registry hands its engine the held set: one rollout for a
    starting generator, however long the history it replayed."""
    def wait() -> None:
        for c in consumers:
            c.caught_up.wait()
        registry.replayed()

    thread = threading.Thread(target=wait, name="adapters-replayed", daemon=True)
    thread.start()
    return thread


def held_watch(registry: AdapterRegistry, interval_s: float = 30.0) -> Task:
    """Every `interval_s`: how many held adapters the engine does not serve (vispod_generator_adapter_held_unservable;
    alert VispodAdapterSyncFailing), and a retry of a held set the engine did not take."""
    def run(stop: threading.Event) -> None:
        while not stop.wait(interval_s):
            try:
                registry.sync_held()
                registry.check_held()
            except Exception:  # a watch must not end the service
                log.exception("held adapter check failed")

    return Task("held-adapters", run)


def after_replay(handler: Callable[[Envelope], Iterable[Output]], consumers: Sequence[EventConsumer],
                 wait_s: float | None = None) -> Callable[[Envelope], Iterable[Output]]:
    """Work waits until the registry has replayed its topics: a fresh pod never serves the base model by
    mistake while it is still learning which adapter is active. Not caught up within `wait_s` (default: half the
    Kafka max poll interval, so the consumer stays in its group): the bus retries the event later."""
    limit = wait_s if wait_s is not None else min(c.kafka.max_poll_interval_ms for c in consumers) / 2000

    def handle(env: Envelope) -> Iterable[Output]:
        for c in consumers:
            if not c.caught_up.wait(limit):
                raise RegistryReplaying("the adapter registry is still replaying its topics")
        return handler(env)

    return handle
