"""Which adapters this generator knows, which one serves, and how that changes.

Lifecycle: CANDIDATE (verified, served only when asked for by id) → CANARY (a share of default
traffic, chosen by hashing the routing key) → ACTIVE (default traffic). Promoting keeps the
previous active (RETIRED, remembered) for ROLLBACK; REJECTED is final. Engines offer no rollback,
so it lives here (FACTS.md).

Threads: request threads call `resolve` while the consumer and gRPC admin calls change state.
Writers serialise on a lock and then swap in an immutable routing snapshot, so `resolve` never
waits for a writer (or for Kafka). Lifecycle events go out in the order of the changes.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from vispod.common.bus import InvalidEvent, Output
from vispod.common.events import Envelope, now_iso
from vispod.common.grpc_server import InvalidArgument
from vispod.common.topics import Topic
from vispod.generator.adapters import metrics
from vispod.generator.adapters.routing import routes_to_canary
from vispod.generator.adapters.state import (
    MAX_HISTORY,
    MAX_OWN_EVENT_IDS,
    MAX_PENDING,
    AdapterRecord,
    RegistryState,
    load_state,
    save_state,
    state_name,
    state_value,
)
from vispod.generator.adapters.verify import (
    REQUIRED_FILES,
    AdapterRejected,
    ArtifactFetcher,
    ArtifactFetcherLike,
    BaseModelCheck,
    check_base_model,
    check_manifest,
    check_safetensors_header,
    read_adapter_config,
    verify_folder,
)
from vispod.generator.adapters.version import (
    BASE_MODEL,
    AdapterUnavailable,
    AdapterVersion,
    split_adapter_id,
)
from vispod.v1 import events_pb2, generator_pb2

log = logging.getLogger(__name__)

CANDIDATE, CANARY, ACTIVE, RETIRED, REJECTED = "CANDIDATE", "CANARY", "ACTIVE", "RETIRED", "REJECTED"
Action = generator_pb2.UpdateAdapterRequest.Action


@dataclass(frozen=True)
class Change:
    adapter_id: str
    previous: str
    state: str
    reason: str
    canary_share: float = 0.0
    at: str = ""        # ISO time of the change (a redelivered registration re-creates the same event)


@dataclass(frozen=True)
class _Routing:
    """What `resolve` reads: replaced whole on every change, never mutated."""

    active: str | None = None
    canary: str | None = None
    canary_share: float = 0.0
    versions: dict[str, AdapterVersion] = field(default_factory=dict)   # every adapter except REJECTED


class AdapterRegistry:
    def __init__(self, state_dir: Path, cache_dir: Path, base_model_id: str,
                 servable: Callable[[str], bool] | None = None,
                 on_loaded: Callable[[AdapterVersion], None] | None = None,
                 publisher=None, artifact_fetcher: ArtifactFetcherLike | None = None, *,
                 base_model_check: BaseModelCheck = "name",
                 apply_actors: Iterable[str] = ("gate", "admin"),
                 on_retired: Callable[[str], None] | None = None,
                 default_canary_share: float = 0.1) -> None:
        """
        servable: backend veto (TGI: only adapters it was started with). on_loaded: called once per
        process for each verified adapter (openai: /v1/load_lora_adapter). on_retired: called with the id
        of an adapter that became RETIRED or REJECTED (local: unload it). publisher: an EventPublisher for
        lifecycle events of admin changes. apply_actors: whose AdapterLifecycleChanged events
        `handle_lifecycle` applies.
        """
        self.state_dir = Path(state_dir)
        self.cache_dir = Path(cache_dir)
        self.base_model_id = base_model_id
        self.servable = servable
        self.on_loaded = on_loaded
        self.on_retired = on_retired
        self.publisher = publisher
        self.fetcher: ArtifactFetcherLike = artifact_fetcher or ArtifactFetcher()
        self.base_model_check = base_model_check
        self.apply_actors = frozenset(apply_actors)
        if not 0 < default_canary_share <= 1:
            raise ValueError("default_canary_share must be in (0, 1]")
        self.default_canary_share = default_canary_share
        self._lock = threading.RLock()        # state changes
        self._emit_lock = threading.Lock()    # lifecycle events leave in the order of the changes
        self._fetch_locks: dict[str, threading.Lock] = {}
        self._loaded: set[str] = set()        # adapters on_loaded accepted in this process
        self._load_lock = threading.Lock()
        self._broken: set[str] = set()        # registered, but the local copy is gone and not re-fetchable
        self._state: RegistryState = load_state(self.state_dir)
        self._restore()
        self._routing = self._snapshot()
        self._update_gauges()

    # --- serving --------------------------------------------------------------------------
    def resolve(self, requested: str, routing_key: str) -> AdapterVersion | None:
        """The adapter for one request: `requested` by id, "" for the default (canary share by routing
        key, else active), "base" for the base model. None means the base model."""
        routing = self._routing
        if requested == BASE_MODEL:
            metrics.RESOLUTIONS.labels("base").inc()
            return None
        if requested:
            chosen, route = requested, "explicit"
        elif routing.canary and routes_to_canary(routing.canary, routing.canary_share, routing_key):
            chosen, route = routing.canary, "canary"
        elif routing.active:
            chosen, route = routing.active, "active"
        else:
            metrics.RESOLUTIONS.labels("base").inc()
            return None
        version = routing.versions.get(chosen)
        if version is None:
            raise AdapterUnavailable(f"adapter {chosen} is unknown or rejected")
        if chosen in self._broken:
            raise AdapterUnavailable(f"adapter {chosen} has no verified local copy")
        if self.servable is not None and not self.servable(chosen):
            raise AdapterUnavailable(f"adapter {chosen} is not servable by this backend")
        self._ensure_loaded(version, raise_unavailable=True)
        metrics.RESOLUTIONS.labels(route).inc()
        return version

    def get(self, adapter_id: str) -> AdapterVersion | None:
        return self._routing.versions.get(adapter_id)

    def state_of(self, adapter_id: str) -> str | None:
        """CANDIDATE | CANARY | ACTIVE | RETIRED | REJECTED, or None when unknown."""
        with self._lock:
            rec = self._state.adapters.get(adapter_id)
            return rec.state if rec else None

    @property
    def active_adapter_id(self) -> str | None:
        return self._routing.active

    def live_adapter_ids(self) -> set[str]:
        """Adapters default traffic may reach (active, canary): keep these loaded."""
        r = self._routing
        return {a for a in (r.active, r.canary) if a}

    def _ensure_loaded(self, version: AdapterVersion, raise_unavailable: bool) -> None:
        if self.on_loaded is None or version.adapter_id in self._loaded:
            return
        with self._load_lock:
            if version.adapter_id in self._loaded:
                return
            try:
                self.on_loaded(version)
            except Exception as exc:
                metrics.LOAD_FAILURES.labels("engine_load").inc()
                log.warning("backend could not load adapter", extra={"adapter_id": version.adapter_id,
                                                                     "error": str(exc)[:300]})
                if raise_unavailable:
                    raise AdapterUnavailable(f"backend could not load adapter {version.adapter_id}: {exc}") from exc
                return
            self._loaded.add(version.adapter_id)

    # --- admin ----------------------------------------------------------------------------
    def list_adapters(self) -> generator_pb2.ListAdaptersResponse:
        with self._lock:
            infos = [self._info(r) for r in self._state.adapters.values()]
            return generator_pb2.ListAdaptersResponse(adapters=infos, active_adapter_id=self._state.active or "")

    def update(self, request: generator_pb2.UpdateAdapterRequest, actor: str = "admin") -> generator_pb2.AdapterInfo:
        """Applies an admin action; InvalidArgument (with the reason) when it is not allowed."""
        action = request.action
        reason = request.reason or f"{actor}: {Action.Name(action).removeprefix('ACTION_').lower()}"
        with self._emit_lock:
            with self._lock:
                adapter_id = request.adapter_id or (self._state.active if action == Action.ACTION_ROLLBACK else "")
                if not adapter_id:
                    raise InvalidArgument("adapter_id is required" if action != Action.ACTION_ROLLBACK
                                          else "no active adapter to roll back")
                rec = self._state.adapters.get(adapter_id)
                if rec is None:
                    raise InvalidArgument(f"unknown adapter {adapter_id}")
                if action == Action.ACTION_CANARY:
                    share = request.canary_share or self.default_canary_share
                    if not 0 < share <= 1:
                        raise InvalidArgument(f"canary_share must be in (0, 1], got {share}")
                    self._require(rec, (CANDIDATE, CANARY, RETIRED), "put on canary")
                    self._require_servable(adapter_id)
                    changes = self._to_canary(adapter_id, share, reason)
                elif action == Action.ACTION_PROMOTE:
                    self._require(rec, (CANDIDATE, CANARY, RETIRED, ACTIVE), "promote")
                    self._require_servable(adapter_id)
                    changes = self._to_active(adapter_id, reason)
                elif action == Action.ACTION_ROLLBACK:
                    if rec.state == ACTIVE:
                        changes = self._rollback_active(RETIRED, reason)
                    elif rec.state == CANARY:
                        changes = self._to_candidate(adapter_id, reason)
                    else:
                        raise InvalidArgument(f"{adapter_id} is {rec.state}: only the active adapter or a canary "
                                              "can be rolled back")
                elif action == Action.ACTION_REJECT:
                    changes = self._to_rejected(adapter_id, reason)
                else:
                    raise InvalidArgument(f"unknown action {action}")
                self._commit(changes)
                info = self._info(self._state.adapters[adapter_id])
            self._emit(changes, actor)
        self._after(changes)
        return info

    @staticmethod
    def _require(rec: AdapterRecord, allowed: tuple[str, ...], what: str) -> None:
        if rec.state not in allowed:
            raise InvalidArgument(f"cannot {what} {rec.adapter_id}: it is {rec.state}")

    def _require_servable(self, adapter_id: str) -> None:
        if adapter_id in self._broken:
            raise InvalidArgument(f"{adapter_id} has no verified local copy on this generator")
        if self.servable is not None and not self.servable(adapter_id):
            raise InvalidArgument(f"{adapter_id} is not servable by this backend")

    # --- events ---------------------------------------------------------------------------
    def handle_published(self, env: Envelope) -> Iterable[Output]:
        """Bus handler for Topic.ADAPTER_PUBLISHED: fetch, verify, register as CANDIDATE.

        Returns the CANDIDATE AdapterLifecycleChanged as an Output (published with the offset commit).
        Raises InvalidEvent (→ DLQ) for a rejected artifact; other errors are transient (retried).
        """
        msg = env.message
        if not isinstance(msg, events_pb2.AdapterPublished):
            raise InvalidEvent(f"expected AdapterPublished, got {type(msg).__name__}")
        try:
            adapter_id, manifest = self._check_event(msg)
        except AdapterRejected as exc:
            return self._reject_event(msg.adapter_id, exc)
        with self._lock:
            existing = self._state.adapters.get(adapter_id)
            lock = self._fetch_locks.setdefault(adapter_id, threading.Lock())
        if existing is not None:
            return self._redelivery(existing, manifest, env)
        with lock:  # one fetch per id at a time; a concurrent duplicate waits, then sees the record
            with self._lock:
                existing = self._state.adapters.get(adapter_id)
            if existing is not None:
                return self._redelivery(existing, manifest, env)
            started = time.monotonic()
            try:
                local_path = self._install(adapter_id, msg.artifact_uri, manifest, msg.base_model_id)
            except AdapterRejected as exc:
                return self._reject_event(adapter_id, exc)
            metrics.FETCH_SECONDS.observe(time.monotonic() - started)
            version = AdapterVersion(adapter_id, local_path, msg.base_model_id or self.base_model_id)
            self._ensure_loaded(version, raise_unavailable=False)
            with self._emit_lock, self._lock:
                now = now_iso()
                self._state.adapters[adapter_id] = AdapterRecord(
                    adapter_id=adapter_id, state=CANDIDATE, base_model_id=version.base_model_id,
                    artifact_uri=msg.artifact_uri, local_path=str(local_path), file_sha256=manifest,
                    published_event_id=env.id, reason="published", registered_at=now, changed_at=now)
                self._broken.discard(adapter_id)
                registered = Change(adapter_id, "UNSPECIFIED", CANDIDATE, "published and verified", at=now)
                pending = self._state.pending.pop(adapter_id, None)
                later = self._apply_decision(adapter_id, pending) if pending else []
                self._commit([registered, *later])
        self._after(later)
        log.info("adapter registered", extra={"adapter_id": adapter_id, "state": self.state_of(adapter_id)})
        return [Output(Topic.ADAPTER_LIFECYCLE, self._event(registered, "generator"))]

    def handle_lifecycle(self, env: Envelope) -> Iterable[Output]:
        """Bus handler for Topic.ADAPTER_LIFECYCLE: applies decisions made elsewhere (the gate, an admin call
        on another replica) idempotently. Emits nothing: the decision is already on the topic."""
        msg = env.message
        if not isinstance(msg, events_pb2.AdapterLifecycleChanged):
            raise InvalidEvent(f"expected AdapterLifecycleChanged, got {type(msg).__name__}")
        if msg.actor not in self.apply_actors:
            return []
        with self._lock:
            if env.id in self._state.own_event_ids:
                return []
        try:
            split_adapter_id(msg.adapter_id)
            target = state_name(msg.state)
        except ValueError as exc:
            raise InvalidEvent(f"bad lifecycle event: {exc}") from exc
        if target not in (CANDIDATE, CANARY, ACTIVE, RETIRED, REJECTED):
            raise InvalidEvent(f"bad lifecycle event: state {target}")
        if target == CANARY and not 0 < msg.canary_share <= 1:
            raise InvalidEvent(f"bad lifecycle event: canary_share {msg.canary_share}")
        decision = {"state": target, "canary_share": msg.canary_share, "actor": msg.actor,
                    "reason": msg.reason or f"{msg.actor} decision", "event_id": env.id}
        with self._lock:
            if msg.adapter_id not in self._state.adapters:
                # The published event may still be on its way (another topic): apply on registration.
                self._state.pending[msg.adapter_id] = decision
                while len(self._state.pending) > MAX_PENDING:  # oldest first (dicts keep insertion order)
                    self._state.pending.pop(next(iter(self._state.pending)))
                save_state(self.state_dir, self._state)
                log.info("decision for an unknown adapter kept for later", extra=decision)
                return []
            changes = self._apply_decision(msg.adapter_id, decision)
            self._commit(changes)
        self._after(changes)
        return []

    def _apply_decision(self, adapter_id: str, decision: dict) -> list[Change]:
        """Moves an adapter to the decided state (under the lock). No-op when it is there already."""
        rec = self._state.adapters[adapter_id]
        target, reason = decision["state"], f"{decision['actor']}: {decision['reason']}"
        if rec.state == target and (target != CANARY or rec.canary_share == decision["canary_share"]):
            return []
        if rec.state == REJECTED:
            log.warning("ignoring a decision about a rejected adapter", extra={"adapter_id": adapter_id, **decision})
            return []
        if target == CANARY and rec.state == ACTIVE:
            log.warning("ignoring a canary decision about the active adapter", extra={"adapter_id": adapter_id})
            return []
        if target in (CANARY, ACTIVE) and (adapter_id in self._broken
                                           or (self.servable is not None and not self.servable(adapter_id))):
            metrics.LOAD_FAILURES.labels("engine_load").inc()
            log.warning("cannot serve the adapter a decision names; keeping the current routing",
                        extra={"adapter_id": adapter_id, **decision})
            return []
        if target == ACTIVE:
            return self._to_active(adapter_id, reason)
        if target == CANARY:
            return self._to_canary(adapter_id, decision["canary_share"], reason)
        if target == CANDIDATE:
            return self._to_candidate(adapter_id, reason)
        if target == RETIRED:
            return self._to_retired(adapter_id, reason)
        return self._to_rejected(adapter_id, reason)

    # --- transitions (under the lock; primary change first, consequences after) -------------
    def _set(self, adapter_id: str, state: str, reason: str, share: float = 0.0) -> Change:
        rec = self._state.adapters[adapter_id]
        change = Change(adapter_id, rec.state, state, reason, share, now_iso())
        rec.state, rec.canary_share, rec.reason, rec.changed_at = state, share, reason, change.at
        return change

    def _to_active(self, adapter_id: str, reason: str) -> list[Change]:
        st = self._state
        if st.active == adapter_id:
            return []
        changes = [self._set(adapter_id, ACTIVE, reason)]
        if st.canary == adapter_id:
            st.canary = None
        st.history = [a for a in st.history if a != adapter_id]
        old, st.active = st.active, adapter_id
        if old is not None:
            changes.append(self._set(old, RETIRED, f"replaced by {adapter_id}"))
            st.history = [*st.history, old][-MAX_HISTORY:]
        return changes

    def _rollback_active(self, final_state: str, reason: str) -> list[Change]:
        st = self._state
        current = st.active
        assert current is not None
        changes = [self._set(current, final_state, reason)]
        st.active = None
        while st.history:
            previous = st.history.pop()
            if st.adapters[previous].state == RETIRED:
                changes.append(self._set(previous, ACTIVE, f"rollback from {current}"))
                st.active = previous
                break
        return changes

    def _to_canary(self, adapter_id: str, share: float, reason: str) -> list[Change]:
        st = self._state
        if st.active == adapter_id:
            raise InvalidArgument(f"{adapter_id} is active; roll it back first")
        changes = [self._set(adapter_id, CANARY, reason, share)]
        st.history = [a for a in st.history if a != adapter_id]
        old, st.canary = st.canary, adapter_id
        if old is not None and old != adapter_id:
            changes.append(self._set(old, CANDIDATE, f"canary replaced by {adapter_id}"))
        return changes

    def _leave(self, adapter_id: str, final_state: str, reason: str) -> list[Change]:
        st = self._state
        if st.active == adapter_id:
            return self._rollback_active(final_state, reason)
        if st.canary == adapter_id:
            st.canary = None
        if final_state == REJECTED:
            st.history = [a for a in st.history if a != adapter_id]
        return [self._set(adapter_id, final_state, reason)]

    def _to_candidate(self, adapter_id: str, reason: str) -> list[Change]:
        return [] if self._state.adapters[adapter_id].state == CANDIDATE else self._leave(adapter_id, CANDIDATE, reason)

    def _to_retired(self, adapter_id: str, reason: str) -> list[Change]:
        return [] if self._state.adapters[adapter_id].state == RETIRED else self._leave(adapter_id, RETIRED, reason)

    def _to_rejected(self, adapter_id: str, reason: str) -> list[Change]:
        return [] if self._state.adapters[adapter_id].state == REJECTED else self._leave(adapter_id, REJECTED, reason)

    # --- applying changes -----------------------------------------------------------------
    def _commit(self, changes: list[Change]) -> None:
        """Persist, then route (under the lock): a crash after this line leaves the new state on disk."""
        if not changes:
            return
        save_state(self.state_dir, self._state)
        self._routing = self._snapshot()
        self._update_gauges()
        for c in changes:
            metrics.LIFECYCLE_CHANGES.labels(c.state).inc()
            log.info("adapter state changed", extra={"adapter_id": c.adapter_id, "previous_state": c.previous,
                                                     "state": c.state, "reason": c.reason})

    def _after(self, changes: list[Change]) -> None:
        """Hooks outside the lock (unloading may wait for in-flight requests)."""
        if self.on_retired is None:
            return
        for c in changes:
            if c.state in (RETIRED, REJECTED):
                self._loaded.discard(c.adapter_id)   # the backend may drop it: load again before serving it
                try:
                    self.on_retired(c.adapter_id)
                except Exception:  # unloading is an optimisation; serving goes on
                    log.exception("on_retired hook failed", extra={"adapter_id": c.adapter_id})

    def _emit(self, changes: list[Change], actor: str) -> None:
        if self.publisher is None:
            return
        for c in changes:
            event_id = str(uuid.uuid4())
            with self._lock:
                self._state.own_event_ids = [*self._state.own_event_ids, event_id][-MAX_OWN_EVENT_IDS:]
                save_state(self.state_dir, self._state)
            try:
                self.publisher.publish(Topic.ADAPTER_LIFECYCLE, self._event(c, actor), event_id=event_id)
            except Exception:  # the change stands; its event is best effort for admin calls
                log.exception("could not publish lifecycle event", extra={"adapter_id": c.adapter_id})

    @staticmethod
    def _event(c: Change, actor: str) -> events_pb2.AdapterLifecycleChanged:
        when = Timestamp()
        if c.at:
            when.FromJsonString(c.at)
        else:
            when.GetCurrentTime()
        return events_pb2.AdapterLifecycleChanged(
            adapter_id=c.adapter_id, previous_state=_state_or_unspecified(c.previous), state=state_value(c.state),
            reason=c.reason, canary_share=c.canary_share, actor=actor, changed_at=when)

    def _snapshot(self) -> _Routing:
        st = self._state
        versions = {r.adapter_id: AdapterVersion(r.adapter_id, Path(r.local_path), r.base_model_id)
                    for r in st.adapters.values() if r.state != REJECTED}
        share = st.adapters[st.canary].canary_share if st.canary else 0.0
        return _Routing(active=st.active, canary=st.canary, canary_share=share, versions=versions)

    def _update_gauges(self) -> None:
        counts = dict.fromkeys(metrics.STATES, 0)
        for r in self._state.adapters.values():
            counts[r.state] = counts.get(r.state, 0) + 1
        for name, n in counts.items():
            metrics.ADAPTER_STATE.labels(name).set(n)
        metrics.CANARY_SHARE.set(self._routing.canary_share)

    def _info(self, rec: AdapterRecord) -> generator_pb2.AdapterInfo:
        return generator_pb2.AdapterInfo(adapter_id=rec.adapter_id, state=state_value(rec.state),
                                         canary_share=rec.canary_share, base_model_id=rec.base_model_id,
                                         artifact_uri=rec.artifact_uri)

    # --- fetching and verification ------------------------------------------------------------
    def _check_event(self, msg: events_pb2.AdapterPublished) -> tuple[str, dict[str, str]]:
        try:
            name, version = split_adapter_id(msg.adapter_id)
        except ValueError as exc:
            raise AdapterRejected("bad_event", str(exc)) from exc
        if (msg.name and msg.name != name) or (msg.version and msg.version != version):
            raise AdapterRejected("bad_event", f"adapter_id {msg.adapter_id} disagrees with name/version "
                                               f"{msg.name!r}/{msg.version!r}")
        if not msg.artifact_uri:
            raise AdapterRejected("bad_event", "artifact_uri is empty")
        manifest = check_manifest(msg.file_sha256)
        if msg.base_model_id:  # cheap check before any download: the event's own claim
            check_base_model(self.base_model_id, msg.base_model_id, "", self.base_model_check)
        return msg.adapter_id, manifest

    def _redelivery(self, existing: AdapterRecord, manifest: dict[str, str], env: Envelope) -> list[Output]:
        if existing.file_sha256 != manifest:
            metrics.LOAD_FAILURES.labels("id_conflict").inc()
            raise InvalidEvent(f"id_conflict: {existing.adapter_id} is already published with other files; "
                               "adapter ids are immutable, publish a new version")
        # Same content: nothing changes. The very same event redelivered (its commit may have been lost)
        # re-creates its CANDIDATE output; the bus derives the same event id, so readers can de-duplicate.
        if env.id == existing.published_event_id and existing.state == CANDIDATE:
            return [Output(Topic.ADAPTER_LIFECYCLE,
                           self._event(Change(existing.adapter_id, "UNSPECIFIED", CANDIDATE, "published and verified",
                                              at=existing.registered_at), "generator"))]
        return []

    def _reject_event(self, adapter_id: str, exc: AdapterRejected) -> list[Output]:
        metrics.LOAD_FAILURES.labels(exc.reason).inc()
        log.warning("adapter rejected", extra={"adapter_id": adapter_id, "reason": exc.reason,
                                               "detail": exc.detail[:300]})
        raise InvalidEvent(f"adapter {adapter_id or '?'} rejected: {exc}") from exc

    def _final_dir(self, adapter_id: str) -> Path:
        name, version = split_adapter_id(adapter_id)
        return self.cache_dir / name / version

    def _install(self, adapter_id: str, uri: str, manifest: dict[str, str], event_base: str) -> Path:
        """Fetch into a temp folder, verify everything, then rename into place (never a half copy)."""
        final = self._final_dir(adapter_id)
        tmp_root = self.cache_dir / ".tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        tmp = tmp_root / uuid.uuid4().hex
        tmp.mkdir()
        try:
            self.fetcher.fetch(uri, list(manifest), tmp)
            self._verify(tmp, manifest, event_base)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # a crash between rename and state save, or a stale copy: keep only if identical
                try:
                    self._verify(final, manifest, event_base)
                    return final
                except AdapterRejected:
                    shutil.rmtree(final)
            tmp.rename(final)
            return final
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _verify(self, folder: Path, manifest: dict[str, str], event_base: str) -> None:
        verify_folder(folder, manifest)
        for required in REQUIRED_FILES:
            if not (folder / required).is_file():
                raise AdapterRejected("missing_file", f"{required} is missing")
        config = read_adapter_config(folder)
        check_base_model(self.base_model_id, event_base, str(config.get("base_model_name_or_path") or ""),
                         self.base_model_check)
        check_safetensors_header(folder / "adapter_model.safetensors")

    def _restore(self) -> None:
        """At start-up: every usable adapter's local copy must still verify; re-fetch it if not."""
        for rec in self._state.adapters.values():
            if rec.state == REJECTED:
                continue
            try:
                self._verify(Path(rec.local_path), rec.file_sha256, rec.base_model_id)
                continue
            except AdapterRejected as exc:
                log.warning("local adapter copy does not verify; fetching it again",
                            extra={"adapter_id": rec.adapter_id, "error": str(exc)})
            try:
                rec.local_path = str(self._install(rec.adapter_id, rec.artifact_uri, rec.file_sha256,
                                                   rec.base_model_id))
            except (AdapterRejected, OSError) as exc:
                metrics.LOAD_FAILURES.labels("restore").inc()
                self._broken.add(rec.adapter_id)
                log.error("adapter cannot be restored; requests for it fail",
                          extra={"adapter_id": rec.adapter_id, "error": str(exc)})


def _state_or_unspecified(name: str) -> int:
    return events_pb2.ADAPTER_STATE_UNSPECIFIED if name == "UNSPECIFIED" else state_value(name)
