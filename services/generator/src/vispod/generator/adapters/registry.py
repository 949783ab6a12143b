"""Which adapters this generator knows and which one serves: the state, the routing snapshot, the hooks.

The parts (vLLM's split of a model registry from the serving models is the model):
- `lifecycle`: the pure state machine (state + command → new state + changes);
- `routing`: the immutable snapshot `resolve` reads, swapped whole after every change;
- `install`: fetch and verify published artifacts;
- `handlers`: the thin Kafka and gRPC translations (events, signatures, requests → commands).
This class executes commands: under one lock it applies the lifecycle, persists, swaps the snapshot and
counts; engine hooks run outside the lock. Request threads never wait for a writer (or for Kafka).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from vispod.common.adapter_store.retention import DEFAULT_CANDIDATE_SLOTS, LifecycleView, held_adapters
from vispod.common.bus import Output
from vispod.common.events import Envelope, now_iso
from vispod.common.signing import Keyring, Signer
from vispod.common.topics import Topic
from vispod.generator.adapters import handlers, lifecycle, metrics
from vispod.generator.adapters.freshness import CommandClock
from vispod.generator.adapters.install import Installer
from vispod.generator.adapters.lifecycle import REJECTED, RETIRED, Change, Command, Context, Result
from vispod.generator.adapters.routing import RoutingSnapshot, snapshot_of
from vispod.generator.adapters.state import MAX_OWN_EVENT_IDS, RegistryState, load_state, save_state
from vispod.generator.adapters.verify import AdapterRejected, ArtifactFetcher, ArtifactFetcherLike, BaseModelCheck
from vispod.generator.adapters.version import AdapterUnavailable, AdapterVersion
from vispod.v1 import generator_pb2

log = logging.getLogger(__name__)

CANDIDATE, CANARY, ACTIVE = lifecycle.CANDIDATE, lifecycle.CANARY, lifecycle.ACTIVE


class AdapterRegistry:
    def __init__(self, state_dir: Path, cache_dir: Path, base_model_id: str,
                 servable: Callable[[str], bool] | None = None,
                 on_loaded: Callable[[AdapterVersion], None] | None = None,
                 publisher=None, artifact_fetcher: ArtifactFetcherLike | None = None, *,
                 base_model_check: BaseModelCheck = "name",
                 apply_actors: Iterable[str] = ("gate", "admin"),
                 on_retired: Callable[[str], None] | None = None,
                 default_canary_share: float = 0.1,
                 keyring: Keyring | None = None, signer: Signer | None = None,
                 command_max_age_s: float = 900.0,
                 on_held: Callable[[tuple[str, ...]], None] | None = None,
                 candidate_slots: int = DEFAULT_CANDIDATE_SLOTS, base_model_digest: str = "") -> None:
        """
        servable: backend veto (TGI: only adapters it was started with). on_loaded: called once per
        process for each verified adapter (openai: /v1/load_lora_adapter). on_retired: called with the id
        of an adapter that became RETIRED or REJECTED (local: unload it). publisher: an EventPublisher for
        lifecycle events of admin changes. apply_actors: whose signed AdapterLifecycleChanged commands
        `handle_lifecycle` obeys; keyring: their public keys (without one, no command is obeyed).
        signer: signs the events of admin calls made here, so other replicas obey them too.
        command_max_age_s: how far a command's Kafka record time may be from its signed time (freshness).
        on_held: called with the set an engine must hold (vispod.common.adapter_store.retention, with
        `candidate_slots`) whenever it changes, once the lifecycle topics are replayed (`replayed()`): a starting
        generator hands its engine the current set once, not one set per replayed event (TGI: one rollout).
        """
        self.state_dir = Path(state_dir)
        self.cache_dir = Path(cache_dir)
        self.base_model_id = base_model_id
        self.servable = servable
        self.on_loaded = on_loaded
        self.on_retired = on_retired
        self.publisher = publisher
        self.installer = Installer(self.cache_dir, base_model_id, artifact_fetcher or ArtifactFetcher(),
                                   base_model_check, base_model_digest)
        self.apply_actors = frozenset(apply_actors)
        self.keyring = keyring
        self.signer = signer
        self.command_clock = CommandClock(command_max_age_s)   # replayed or stale commands are refused
        if not 0 < default_canary_share <= 1:
            raise ValueError("default_canary_share must be in (0, 1]")
        self.default_canary_share = default_canary_share
        self.on_held = on_held
        self.candidate_slots = candidate_slots
        self._replayed = False
        self._held: tuple[str, ...] | None = None   # the set last handed to on_held
        self._lock = threading.RLock()        # state changes
        self._emit_lock = threading.Lock()    # lifecycle events leave in the order of the changes
        self._loaded: set[str] = set()        # adapters on_loaded accepted in this process
        self._load_lock = threading.Lock()
        self._broken: set[str] = set()        # registered, but the local copy is gone and not re-fetchable
        self._state: RegistryState = load_state(self.state_dir)
        self._restore()
        self._routing: RoutingSnapshot = snapshot_of(self._state)
        self._update_gauges()

    # --- serving --------------------------------------------------------------------------
    def resolve(self, requested: str, routing_key: str) -> AdapterVersion | None:
        """The adapter for one request: `requested` by id, "" for the default (canary share by routing
        key, else active), "base" for the base model. None means the base model."""
        routing = self._routing
        chosen, route = routing.choose(requested, routing_key)
        if chosen is None:
            metrics.RESOLUTIONS.labels("base").inc()
            return None
        version = routing.versions.get(chosen)
        if version is None:
            raise AdapterUnavailable(f"adapter {chosen} is unknown or rejected")
        if chosen in self._broken:
            raise AdapterUnavailable(f"adapter {chosen} has no verified local copy")
        if self.servable is not None and not self.servable(chosen):
            raise AdapterUnavailable(f"adapter {chosen} is not servable by this backend")
        self.ensure_loaded(version, raise_unavailable=True)
        metrics.RESOLUTIONS.labels(route).inc()
        return version

    def can_serve(self, adapter_id: str) -> bool:
        """A request for it would reach an engine that has it now (the gate evaluates only then)."""
        if adapter_id not in self._routing.versions or adapter_id in self._broken:
            return False
        try:
            return self.servable is None or bool(self.servable(adapter_id))
        except Exception:  # the engine's listing failed: not servable, asked again next time
            return False

    @property
    def routing(self) -> RoutingSnapshot:
        return self._routing

    def get(self, adapter_id: str) -> AdapterVersion | None:
        return self._routing.versions.get(adapter_id)

    def state_of(self, adapter_id: str) -> str | None:
        """CANDIDATE | CANARY | ACTIVE | RETIRED | REJECTED, or None when unknown."""
        rec = self.snapshot_state().adapters.get(adapter_id)
        return rec.state if rec else None

    def snapshot_state(self) -> RegistryState:
        """The current state (do not modify it: changes replace it whole)."""
        return self._state

    @property
    def active_adapter_id(self) -> str | None:
        return self._routing.active

    @property
    def previous_active(self) -> str:
        """The adapter a rollback returns to: the newest previous active that is still RETIRED."""
        st = self._state
        return next((a for a in reversed(st.history) if st.adapters[a].state == RETIRED), "")

    def lifecycle_view(self) -> LifecycleView:
        st = self._state
        return LifecycleView({a: r.state for a, r in st.adapters.items()}, self.previous_active)

    def held(self) -> tuple[str, ...]:
        """What an engine must hold now: pinned (active, canary, previous active), then the newest candidates."""
        return held_adapters(self.lifecycle_view(), self.candidate_slots)

    def replayed(self) -> None:
        """The lifecycle topics are read to their ends: hand the engine the current held set (once)."""
        self._replayed = True
        self.sync_held()

    def sync_held(self) -> None:
        """Hands the held set to the engine when it changed (outside the state lock: a rollout calls an API)."""
        if self.on_held is None or not self._replayed:
            return
        held = self.held()
        if held == self._held:
            return
        try:
            self.on_held(held)
        except Exception:  # retried on the next change; the engine keeps what it holds
            log.exception("engine did not take the held adapter set", extra={"adapters": list(held)})
            return
        self._held = held

    def check_held(self) -> list[str]:
        """The held adapters the engine does not serve now (also the gauge an alert watches)."""
        missing = [a for a in self.held() if not self.can_serve(a)]
        metrics.HELD_UNSERVABLE.set(len(missing))
        return missing

    def live_adapter_ids(self) -> set[str]:
        """Adapters default traffic may reach (active, canary): keep these loaded."""
        return self._routing.live

    def ensure_loaded(self, version: AdapterVersion, raise_unavailable: bool) -> None:
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

    # --- the transports (thin: see handlers) ----------------------------------------------
    def list_adapters(self) -> generator_pb2.ListAdaptersResponse:
        return handlers.list_adapters(self)

    def update(self, request: generator_pb2.UpdateAdapterRequest, actor: str = "admin") -> generator_pb2.AdapterInfo:
        """Applies an admin action; InvalidArgument (with the reason) when it is not allowed."""
        return handlers.admin_update(self, request, actor)

    def handle_published(self, env: Envelope) -> Iterable[Output]:
        """Bus handler for Topic.ADAPTER_PUBLISHED: fetch, verify, register as CANDIDATE."""
        return handlers.handle_published(self, env)

    def handle_lifecycle(self, env: Envelope) -> Iterable[Output]:
        """Bus handler for Topic.ADAPTER_LIFECYCLE: obeys signed decisions made elsewhere, idempotently."""
        return handlers.handle_lifecycle(self, env)

    # --- executing commands ---------------------------------------------------------------
    def execute(self, command: Command) -> Result:
        """Applies one command under the lock; persists and swaps the routing when anything changed.
        Raises lifecycle.Refused for an admin command that is not allowed (nothing changes then)."""
        with self._lock:
            result = lifecycle.apply(self._state, command, self._context())
            if result.changes or result.pending:
                self._commit(result)
        return result

    def _context(self) -> Context:
        vetoed = frozenset(a for a in self._state.adapters if self.servable is not None and not self.servable(a))
        return Context(now_iso(), frozenset(self._broken), vetoed, self.default_canary_share)

    def _commit(self, result: Result) -> None:
        """Persist, then route (under the lock): a crash after this line leaves the new state on disk."""
        save_state(self.state_dir, result.state)
        self._state = result.state
        self._routing = snapshot_of(result.state)
        self._update_gauges()
        for c in result.changes:
            metrics.LIFECYCLE_CHANGES.labels(c.state).inc()
            log.info("adapter state changed", extra={"adapter_id": c.adapter_id, "previous_state": c.previous,
                                                     "state": c.state, "reason": c.reason,
                                                     "canary_share": c.canary_share})

    def mark_installed(self, adapter_id: str) -> None:
        self._broken.discard(adapter_id)

    def after(self, changes: Iterable[Change]) -> None:
        """Hooks outside the lock (unloading may wait for in-flight requests, a rollout calls an API)."""
        self.sync_held()
        if self.on_retired is None:
            return
        for c in changes:
            if c.state in (RETIRED, REJECTED):
                self._loaded.discard(c.adapter_id)   # the backend may drop it: load again before serving it
                try:
                    self.on_retired(c.adapter_id)
                except Exception:  # unloading is an optimisation; serving goes on
                    log.exception("on_retired hook failed", extra={"adapter_id": c.adapter_id})

    def emit(self, changes: Iterable[Change], actor: str) -> None:
        """Publishes the events of an admin change: signed commands every replica obeys when this registry has
        the admin key, else notices of a change made on this replica only (never dead-lettered as forgeries)."""
        if self.publisher is None:
            return
        if self.signer is None or actor != self.signer.identity:
            actor = handlers.NOTIFIER
        for c in changes:
            event_id = str(uuid.uuid4())
            with self._lock:
                st = self._state
                st.own_event_ids = [*st.own_event_ids, event_id][-MAX_OWN_EVENT_IDS:]
                save_state(self.state_dir, st)
            try:
                event = handlers.lifecycle_event(c, actor, self.signer)
                key = None if event.signature else handlers.notice_key(c.adapter_id, actor)
                self.publisher.publish(Topic.ADAPTER_LIFECYCLE, event, event_id=event_id, key=key)
            except Exception:  # the change stands; its event is best effort for admin calls
                log.exception("could not publish lifecycle event", extra={"adapter_id": c.adapter_id})

    def is_own_event(self, event_id: str) -> bool:
        return event_id in self._state.own_event_ids

    @property
    def emit_lock(self) -> threading.Lock:
        return self._emit_lock

    def _update_gauges(self) -> None:
        for name, n in lifecycle.counts(self._state).items():
            metrics.ADAPTER_STATE.labels(name).set(n)
        metrics.CANARY_SHARE.set(self._routing.canary_share)

    def _restore(self) -> None:
        """At start-up: every usable adapter's local copy must still verify; re-fetch it if not."""
        for rec in self._state.adapters.values():
            if rec.state == REJECTED:
                continue
            try:
                rec.local_path = str(self.installer.restore(rec))
            except (AdapterRejected, OSError) as exc:
                metrics.LOAD_FAILURES.labels("restore").inc()
                self._broken.add(rec.adapter_id)
                log.error("adapter %s cannot be restored (%s); requests for it fail", rec.adapter_id, exc,
                          extra={"adapter_id": rec.adapter_id, "error": str(exc)})
