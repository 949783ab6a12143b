"""The adapter lifecycle as a pure function: state + command → new state + changes. No I/O, no clock, no locks.

CANDIDATE (verified, served only when asked for by id) → CANARY (a share of default traffic) → ACTIVE
(default traffic). Promoting keeps the previous active (RETIRED, remembered in `history`) for ROLLBACK;
REJECTED is final. Three kinds of command:
- `Register`: a verified adapter arrives (CANDIDATE); a decision kept for it is applied at once.
- `Decide`: a decision made elsewhere (the gate, an admin command on the bus). Lenient: what cannot be
  applied is ignored with a note (the bus must go on), never raised.
- `Admin`: an admin call. Strict: what is not allowed raises `Refused` with the reason.
The caller persists the new state, swaps the routing snapshot and emits one event per change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from vispod.generator.adapters.state import MAX_HISTORY, MAX_PENDING, AdapterRecord, RegistryState

CANDIDATE, CANARY, ACTIVE, RETIRED, REJECTED = "CANDIDATE", "CANARY", "ACTIVE", "RETIRED", "REJECTED"
STATES = (CANDIDATE, CANARY, ACTIVE, RETIRED, REJECTED)
ADMIN_ACTIONS = ("canary", "promote", "rollback", "reject")


class Refused(Exception):
    """An admin command that is not allowed in the current state; the message says why."""


@dataclass(frozen=True)
class Change:
    adapter_id: str
    previous: str
    state: str
    reason: str
    canary_share: float = 0.0
    at: str = ""        # ISO time of the change (a redelivered registration re-creates the same event)


@dataclass(frozen=True)
class Register:
    record: AdapterRecord          # state CANDIDATE, verified and installed


@dataclass(frozen=True)
class Decide:
    adapter_id: str
    target: str                    # one of STATES
    actor: str
    reason: str
    canary_share: float = 0.0
    event_id: str = ""


@dataclass(frozen=True)
class Admin:
    action: str                    # one of ADMIN_ACTIONS
    adapter_id: str = ""           # "" with rollback: the active adapter
    canary_share: float = 0.0      # 0: the default share
    reason: str = ""


Command = Register | Decide | Admin


@dataclass(frozen=True)
class Context:
    now: str                                        # ISO time stamped on every change
    broken: frozenset[str] = frozenset()            # registered, but the local copy is lost
    unservable: frozenset[str] = frozenset()        # vetoed by the backend (e.g. TGI started without it)
    default_canary_share: float = 0.1


@dataclass(frozen=True)
class Result:
    state: RegistryState
    changes: tuple[Change, ...] = ()
    note: str = ""                 # why a decision changed nothing (ignored, kept for later)
    pending: bool = False          # the decision was kept for an adapter not registered yet


def apply(state: RegistryState, command: Command, ctx: Context) -> Result:
    """The new state (a copy; `state` is never modified) and the changes, primary change first."""
    st = copy.deepcopy(state)
    if isinstance(command, Register):
        return _register(st, command, ctx)
    if isinstance(command, Decide):
        return _decide(st, command, ctx)
    if isinstance(command, Admin):
        return _admin(st, command, ctx)
    raise TypeError(f"not a lifecycle command: {command!r}")


# --- commands -------------------------------------------------------------------------------
def _register(st: RegistryState, cmd: Register, ctx: Context) -> Result:
    rec = copy.deepcopy(cmd.record)
    if rec.adapter_id in st.adapters:
        raise Refused(f"{rec.adapter_id} is registered already")
    rec.state, rec.changed_at = CANDIDATE, rec.changed_at or ctx.now
    rec.registered_at = rec.registered_at or ctx.now
    st.adapters[rec.adapter_id] = rec
    registered = Change(rec.adapter_id, "UNSPECIFIED", CANDIDATE, "published and verified", at=rec.registered_at)
    kept = st.pending.pop(rec.adapter_id, None)
    if kept is None:
        return Result(st, (registered,))
    later = _decide(st, Decide(rec.adapter_id, kept["state"], kept["actor"], kept["reason"],
                               kept.get("canary_share", 0.0), kept.get("event_id", "")), ctx)
    return Result(later.state, (registered, *later.changes), later.note)


def _decide(st: RegistryState, cmd: Decide, ctx: Context) -> Result:
    adapter_id, target = cmd.adapter_id, cmd.target
    if target not in STATES:
        raise ValueError(f"unknown state {target!r}")
    if adapter_id not in st.adapters:
        # The published event may still be on its way (another topic): apply on registration.
        st.pending[adapter_id] = {"state": target, "canary_share": cmd.canary_share, "actor": cmd.actor,
                                  "reason": cmd.reason, "event_id": cmd.event_id}
        while len(st.pending) > MAX_PENDING:  # oldest first (dicts keep insertion order)
            st.pending.pop(next(iter(st.pending)))
        return Result(st, (), "decision for an unknown adapter kept for later", pending=True)
    rec = st.adapters[adapter_id]
    reason = f"{cmd.actor}: {cmd.reason}"
    if rec.state == target and (target != CANARY or rec.canary_share == cmd.canary_share):
        return Result(st, (), "already in that state")
    if rec.state == REJECTED:
        return Result(st, (), "ignoring a decision about a rejected adapter")
    if target == CANARY and rec.state == ACTIVE:
        return Result(st, (), "ignoring a canary decision about the active adapter")
    if target in (CANARY, ACTIVE) and (adapter_id in ctx.broken or adapter_id in ctx.unservable):
        return Result(st, (), "cannot serve the adapter a decision names; keeping the current routing")
    if target == ACTIVE:
        changes = _to_active(st, adapter_id, reason, ctx.now)
    elif target == CANARY:
        changes = _to_canary(st, adapter_id, cmd.canary_share, reason, ctx.now)
    else:
        changes = _leave(st, adapter_id, target, reason, ctx.now)
    return Result(st, tuple(changes))


def _admin(st: RegistryState, cmd: Admin, ctx: Context) -> Result:
    action = cmd.action
    adapter_id = cmd.adapter_id or (st.active if action == "rollback" else "") or ""
    if not adapter_id:
        raise Refused("no active adapter to roll back" if action == "rollback" else "adapter_id is required")
    rec = st.adapters.get(adapter_id)
    if rec is None:
        raise Refused(f"unknown adapter {adapter_id}")
    reason = cmd.reason or f"admin: {action}"
    if action == "canary":
        share = cmd.canary_share or ctx.default_canary_share
        if not 0 < share <= 1:
            raise Refused(f"canary_share must be in (0, 1], got {share}")
        _require(rec, (CANDIDATE, CANARY, RETIRED), "put on canary")
        _require_servable(adapter_id, ctx)
        changes = _to_canary(st, adapter_id, share, reason, ctx.now)
    elif action == "promote":
        _require(rec, (CANDIDATE, CANARY, RETIRED, ACTIVE), "promote")
        _require_servable(adapter_id, ctx)
        changes = _to_active(st, adapter_id, reason, ctx.now)
    elif action == "rollback":
        if rec.state not in (ACTIVE, CANARY):
            raise Refused(f"{adapter_id} is {rec.state}: only the active adapter or a canary can be rolled back")
        changes = _leave(st, adapter_id, RETIRED if rec.state == ACTIVE else CANDIDATE, reason, ctx.now)
    elif action == "reject":
        changes = _leave(st, adapter_id, REJECTED, reason, ctx.now)
    else:
        raise Refused(f"unknown action {action!r}")
    return Result(st, tuple(changes))


def _require(rec: AdapterRecord, allowed: tuple[str, ...], what: str) -> None:
    if rec.state not in allowed:
        raise Refused(f"cannot {what} {rec.adapter_id}: it is {rec.state}")


def _require_servable(adapter_id: str, ctx: Context) -> None:
    if adapter_id in ctx.broken:
        raise Refused(f"{adapter_id} has no verified local copy on this generator")
    if adapter_id in ctx.unservable:
        raise Refused(f"{adapter_id} is not servable by this backend")


# --- transitions (on the copy; primary change first, consequences after) ---------------------
def _set(st: RegistryState, adapter_id: str, state: str, reason: str, now: str, share: float = 0.0) -> Change:
    rec = st.adapters[adapter_id]
    change = Change(adapter_id, rec.state, state, reason, share, now)
    rec.state, rec.canary_share, rec.reason, rec.changed_at = state, share, reason, now
    return change


def _to_active(st: RegistryState, adapter_id: str, reason: str, now: str) -> list[Change]:
    if st.active == adapter_id:
        return []
    changes = [_set(st, adapter_id, ACTIVE, reason, now)]
    if st.canary == adapter_id:
        st.canary = None
    st.history = [a for a in st.history if a != adapter_id]
    old, st.active = st.active, adapter_id
    if old is not None:
        changes.append(_set(st, old, RETIRED, f"replaced by {adapter_id}", now))
        st.history = [*st.history, old][-MAX_HISTORY:]
    return changes


def _rollback_active(st: RegistryState, final_state: str, reason: str, now: str) -> list[Change]:
    current = st.active
    assert current is not None
    changes = [_set(st, current, final_state, reason, now)]
    st.active = None
    while st.history:
        previous = st.history.pop()
        if st.adapters[previous].state == RETIRED:
            changes.append(_set(st, previous, ACTIVE, f"rollback from {current}", now))
            st.active = previous
            break
    return changes


def _to_canary(st: RegistryState, adapter_id: str, share: float, reason: str, now: str) -> list[Change]:
    if st.active == adapter_id:
        raise Refused(f"{adapter_id} is active; roll it back first")
    changes = [_set(st, adapter_id, CANARY, reason, now, share)]
    st.history = [a for a in st.history if a != adapter_id]
    old, st.canary = st.canary, adapter_id
    if old is not None and old != adapter_id:
        changes.append(_set(st, old, CANDIDATE, f"canary replaced by {adapter_id}", now))
    return changes


def _leave(st: RegistryState, adapter_id: str, final_state: str, reason: str, now: str) -> list[Change]:
    """To CANDIDATE, RETIRED or REJECTED; leaving ACTIVE rolls back to the previous active adapter."""
    if st.adapters[adapter_id].state == final_state:
        return []
    if st.active == adapter_id:
        return _rollback_active(st, final_state, reason, now)
    if st.canary == adapter_id:
        st.canary = None
    if final_state == REJECTED:
        st.history = [a for a in st.history if a != adapter_id]
    return [_set(st, adapter_id, final_state, reason, now)]


def counts(state: RegistryState) -> dict[str, int]:
    out = dict.fromkeys(STATES, 0)
    for r in state.adapters.values():
        out[r.state] = out.get(r.state, 0) + 1
    return out
