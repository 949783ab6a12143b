"""The thin transports of the adapter registry: Kafka events and gRPC admin calls become lifecycle commands.

Errors map once: an invalid event → InvalidArgument, an unauthorised command → PermissionDenied (both dead-lettered
at once with the reason, the consumer goes on); a refused admin call → InvalidArgument (gRPC INVALID_ARGUMENT).
The handlers see a registry through `Registry`, what they need of it: the registry module imports them, never
the other way round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from google.protobuf.timestamp_pb2 import Timestamp

from vispod.common.bus import Output
from vispod.common.errors import InvalidArgument, PermissionDenied
from vispod.common.events import Envelope
from vispod.common.lifecycle_signing import sign_command, verify_command
from vispod.common.signing import Keyring, SignatureInvalid, Signer
from vispod.common.topics import Topic
from vispod.generator.adapters import metrics
from vispod.generator.adapters.freshness import CommandClock, StaleCommand
from vispod.generator.adapters.install import Installer
from vispod.generator.adapters.lifecycle import (
    CANARY,
    CANDIDATE,
    STATES,
    Admin,
    Change,
    Command,
    Decide,
    Refused,
    Register,
    Result,
)
from vispod.generator.adapters.state import AdapterRecord, RegistryState, state_name, state_value
from vispod.generator.adapters.verify import AdapterRejected
from vispod.generator.adapters.version import AdapterVersion, split_adapter_id
from vispod.v1 import events_pb2, generator_pb2

log = logging.getLogger(__name__)

Action = generator_pb2.UpdateAdapterRequest.Action
_ACTIONS = {Action.ACTION_CANARY: "canary", Action.ACTION_PROMOTE: "promote",
            Action.ACTION_ROLLBACK: "rollback", Action.ACTION_REJECT: "reject"}
NOTIFIER = "generator"  # events a generator publishes about its own changes: news, never commands


@runtime_checkable
class Registry(Protocol):
    """What the handlers use of vispod.generator.adapters.registry.AdapterRegistry."""

    base_model_id: str
    installer: Installer
    keyring: Keyring | None
    apply_actors: frozenset[str]
    command_clock: CommandClock

    @property
    def previous_active(self) -> str: ...
    @property
    def emit_lock(self) -> threading.Lock: ...
    def snapshot_state(self) -> RegistryState: ...
    def state_of(self, adapter_id: str) -> str | None: ...
    def can_serve(self, adapter_id: str) -> bool: ...
    def is_own_event(self, event_id: str) -> bool: ...
    def ensure_loaded(self, version: AdapterVersion, raise_unavailable: bool) -> None: ...
    def mark_installed(self, adapter_id: str) -> None: ...
    def execute(self, command: Command) -> Result: ...
    def emit(self, changes: Iterable[Change], actor: str) -> None: ...
    def after(self, changes: Iterable[Change]) -> None: ...


# --- gRPC admin --------------------------------------------------------------------------------
def list_adapters(reg: Registry) -> generator_pb2.ListAdaptersResponse:
    st = reg.snapshot_state()
    return generator_pb2.ListAdaptersResponse(
        adapters=[adapter_info(r, reg.can_serve(r.adapter_id)) for r in st.adapters.values()],
        active_adapter_id=st.active or "", previous_active_adapter_id=reg.previous_active)


def admin_update(reg: Registry, request: generator_pb2.UpdateAdapterRequest,
                 actor: str) -> generator_pb2.AdapterInfo:
    name = _ACTIONS.get(request.action)
    if name is None:
        raise InvalidArgument(f"unknown action {request.action}")
    command = Admin(name, request.adapter_id, request.canary_share, request.reason or f"{actor}: {name}")
    with reg.emit_lock:
        try:
            result = reg.execute(command)
        except Refused as exc:
            raise InvalidArgument(str(exc)) from exc
        adapter_id = result.changes[0].adapter_id if result.changes else request.adapter_id
        info = adapter_info(reg.snapshot_state().adapters[adapter_id], reg.can_serve(adapter_id))
        reg.emit(result.changes, actor)
    reg.after(result.changes)
    return info


def adapter_info(rec: AdapterRecord, servable: bool) -> generator_pb2.AdapterInfo:
    return generator_pb2.AdapterInfo(adapter_id=rec.adapter_id, state=state_value(rec.state),
                                     canary_share=rec.canary_share, base_model_id=rec.base_model_id,
                                     artifact_uri=rec.artifact_uri, servable=servable)


# --- Kafka: adapter.published ------------------------------------------------------------------
def handle_published(reg: Registry, env: Envelope) -> list[Output]:
    """Fetch, verify, register as CANDIDATE; the CANDIDATE event is returned as an Output (published with
    the offset commit). InvalidArgument (→ DLQ) for a rejected artifact; other errors are transient (retried).
    An event that announces another base model is another generator pool's (pools of different bases share the
    topic): skipped and counted, neither fetched nor dead-lettered, so no load-failure alert fires for it."""
    msg = env.message
    if not isinstance(msg, events_pb2.AdapterPublished):
        raise InvalidArgument(f"expected AdapterPublished, got {type(msg).__name__}")
    if reg.installer.announces_another_base(msg):
        metrics.EVENTS_SKIPPED.labels("other_base_model").inc()
        log.info("adapter for another base model: not this generator's", extra={
            "adapter_id": msg.adapter_id, "base_model_id": msg.base_model_id, "serves": reg.installer.base_model_id})
        return []
    try:
        adapter_id, manifest = reg.installer.check_event(msg)
    except AdapterRejected as exc:
        raise _rejected(msg.adapter_id, exc) from exc
    existing = reg.snapshot_state().adapters.get(adapter_id)
    if existing is not None:
        return _redelivery(existing, manifest, env)
    with reg.installer.lock_for(adapter_id):
        existing = reg.snapshot_state().adapters.get(adapter_id)
        if existing is not None:
            return _redelivery(existing, manifest, env)
        started = time.monotonic()
        try:
            local_path = reg.installer.install(adapter_id, msg.artifact_uri, manifest, msg.base_model_id)
        except AdapterRejected as exc:
            raise _rejected(adapter_id, exc) from exc
        metrics.FETCH_SECONDS.observe(time.monotonic() - started)
        version = AdapterVersion(adapter_id, local_path, msg.base_model_id or reg.base_model_id)
        reg.ensure_loaded(version, raise_unavailable=False)
        record = AdapterRecord(adapter_id=adapter_id, state=CANDIDATE, base_model_id=version.base_model_id,
                               artifact_uri=msg.artifact_uri, local_path=str(local_path), file_sha256=manifest,
                               published_event_id=env.id, reason="published")
        reg.mark_installed(adapter_id)
        with reg.emit_lock:
            result = reg.execute(Register(record))
    registered, later = result.changes[0], result.changes[1:]
    reg.after(later)   # also hands the engine the held set, which a new candidate may change
    log.info("adapter registered", extra={"adapter_id": adapter_id, "state": reg.state_of(adapter_id)})
    return [Output(Topic.ADAPTER_LIFECYCLE, lifecycle_event(registered, NOTIFIER), notice_key(adapter_id))]


def notice_key(adapter_id: str, actor: str = NOTIFIER) -> bytes:
    """The Kafka key of an unsigned notice: never the adapter id, which keys signed commands on the compacted
    topic, so compaction can never drop a command in favour of a notice about the same adapter."""
    return f"{adapter_id}#{actor}".encode()


def _redelivery(existing: AdapterRecord, manifest: dict[str, str], env: Envelope) -> list[Output]:
    if existing.file_sha256 != manifest:
        metrics.LOAD_FAILURES.labels("id_conflict").inc()
        raise InvalidArgument(f"id_conflict: {existing.adapter_id} is already published with other files; "
                           "adapter ids are immutable, publish a new version")
    # Same content: nothing changes. The very same event redelivered (its commit may have been lost)
    # re-creates its CANDIDATE output; the bus derives the same event id, so readers can de-duplicate.
    if env.id == existing.published_event_id and existing.state == CANDIDATE:
        again = Change(existing.adapter_id, "UNSPECIFIED", CANDIDATE, "published and verified",
                       at=existing.registered_at)
        return [Output(Topic.ADAPTER_LIFECYCLE, lifecycle_event(again, NOTIFIER), notice_key(existing.adapter_id))]
    return []


def _rejected(adapter_id: str, exc: AdapterRejected) -> InvalidArgument:
    metrics.LOAD_FAILURES.labels(exc.reason).inc()
    log.warning("adapter rejected", extra={"adapter_id": adapter_id, "reason": exc.reason,
                                           "detail": exc.detail[:300]})
    return InvalidArgument(f"adapter {adapter_id or '?'} rejected: {exc}")


# --- Kafka: adapter.lifecycle ------------------------------------------------------------------
def handle_lifecycle(reg: Registry, env: Envelope) -> list[Output]:
    """Obeys decisions made elsewhere (the gate, an admin), idempotently, when they are signed by a trusted
    gate or admin key. Unsigned, wrongly signed or self-declared commands are dead-lettered with the reason.
    Emits nothing: the decision is already on the topic."""
    msg = env.message
    if not isinstance(msg, events_pb2.AdapterLifecycleChanged):
        raise InvalidArgument(f"expected AdapterLifecycleChanged, got {type(msg).__name__}")
    if reg.is_own_event(env.id):
        return []
    if msg.actor == NOTIFIER and not msg.signature:
        return []  # a replica reporting its own change
    try:
        identity = verify_command(msg, reg.keyring)
    except SignatureInvalid as exc:
        metrics.COMMANDS_REFUSED.labels("signature").inc()
        log.warning("unauthorised lifecycle command", extra={"adapter_id": msg.adapter_id, "actor": msg.actor,
                                                             "error": str(exc)})
        raise PermissionDenied(f"unauthorised lifecycle command: {exc}") from exc
    if identity not in reg.apply_actors:
        metrics.COMMANDS_REFUSED.labels("identity").inc()
        raise PermissionDenied(f"unauthorised lifecycle command: {identity!r} is not obeyed here")
    try:
        reg.command_clock.check(msg, env.timestamp_ms)
    except StaleCommand as exc:
        metrics.COMMANDS_REFUSED.labels("stale").inc()
        log.warning("replayed lifecycle command", extra={"adapter_id": msg.adapter_id, "actor": identity,
                                                         "error": str(exc)})
        raise PermissionDenied(str(exc)) from exc
    try:
        split_adapter_id(msg.adapter_id)
        target = state_name(msg.state)
    except ValueError as exc:
        raise InvalidArgument(f"bad lifecycle event: {exc}") from exc
    if target not in STATES:
        raise InvalidArgument(f"bad lifecycle event: state {target}")
    if target == CANARY and not 0 < msg.canary_share <= 1:
        raise InvalidArgument(f"bad lifecycle event: canary_share {msg.canary_share}")
    decision = Decide(msg.adapter_id, target, identity, msg.reason or f"{identity} decision",
                      msg.canary_share, env.id)
    result = reg.execute(decision)
    reg.command_clock.applied(msg)
    metrics.COMMANDS_OBEYED.labels(identity).inc()
    if result.note and not result.changes:
        log.info(result.note, extra={"adapter_id": msg.adapter_id, "state": target, "actor": identity})
    reg.after(result.changes)
    return []


def lifecycle_event(c: Change, actor: str, signer: Signer | None = None) -> events_pb2.AdapterLifecycleChanged:
    when = Timestamp()
    if c.at:
        when.FromJsonString(c.at)
    else:
        when.GetCurrentTime()
    previous = events_pb2.ADAPTER_STATE_UNSPECIFIED if c.previous == "UNSPECIFIED" else state_value(c.previous)
    event = events_pb2.AdapterLifecycleChanged(
        adapter_id=c.adapter_id, previous_state=previous, state=state_value(c.state),
        reason=c.reason, canary_share=c.canary_share, actor=actor, changed_at=when)
    if signer is not None and actor == signer.identity:
        sign_command(event, signer)
    return event
