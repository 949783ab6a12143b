"""The pure adapter lifecycle: every command from every state, invariants over random sequences, purity."""

from __future__ import annotations

import copy
import random

import pytest

from vispod.generator.adapters.lifecycle import (
    ACTIVE,
    ADMIN_ACTIONS,
    CANARY,
    CANDIDATE,
    REJECTED,
    RETIRED,
    STATES,
    Admin,
    Context,
    Decide,
    Refused,
    Register,
    apply,
)
from vispod.generator.adapters.routing import snapshot_of
from vispod.generator.adapters.state import AdapterRecord, RegistryState

CTX = Context(now="2026-12-01T00:00:00.000Z")
X, OTHER = "x@1", "o@1"


def record(adapter_id: str) -> AdapterRecord:
    return AdapterRecord(adapter_id=adapter_id, state=CANDIDATE, base_model_id="base", artifact_uri="file:///a",
                         local_path=f"/cache/{adapter_id}", file_sha256={"adapter_model.safetensors": "0" * 64})


def run(state: RegistryState, *commands) -> RegistryState:
    for c in commands:
        state = apply(state, c, CTX).state
    return state


def with_x_in(state_name: str) -> RegistryState:
    """OTHER is active (or retired when X is); X in the given state."""
    st = run(RegistryState(), Register(record(OTHER)), Admin("promote", OTHER), Register(record(X)))
    setup = {CANDIDATE: [], CANARY: [Admin("canary", X, 0.2)], ACTIVE: [Admin("promote", X)],
             RETIRED: [Admin("promote", X), Admin("promote", OTHER)], REJECTED: [Admin("reject", X)]}
    st = run(st, *setup[state_name])
    assert st.adapters[X].state == state_name
    return st


def check_invariants(st: RegistryState) -> None:
    actives = [a for a, r in st.adapters.items() if r.state == ACTIVE]
    canaries = [a for a, r in st.adapters.items() if r.state == CANARY]
    assert actives == ([st.active] if st.active else [])
    assert canaries == ([st.canary] if st.canary else [])
    assert st.active != st.canary or st.active is None
    # Rollback candidates: never the active one or a rejected one (a rollback skips any that is not RETIRED).
    assert all(st.adapters[a].state in (RETIRED, CANDIDATE) for a in st.history), st.history
    assert len(set(st.history)) == len(st.history)
    for r in st.adapters.values():
        assert (r.canary_share > 0) == (r.state == CANARY)
    snap = snapshot_of(st)
    assert snap.active == st.active and snap.canary == st.canary
    assert not any(st.adapters[a].state == REJECTED for a in snap.versions)


# --- admin commands: the whole table ---------------------------------------------------------
ADMIN_TABLE = {
    # action: {state of X before: state of X after, or Refused}
    "canary": {CANDIDATE: CANARY, CANARY: CANARY, ACTIVE: Refused, RETIRED: CANARY, REJECTED: Refused},
    "promote": {CANDIDATE: ACTIVE, CANARY: ACTIVE, ACTIVE: ACTIVE, RETIRED: ACTIVE, REJECTED: Refused},
    "rollback": {CANDIDATE: Refused, CANARY: CANDIDATE, ACTIVE: RETIRED, RETIRED: Refused, REJECTED: Refused},
    "reject": {CANDIDATE: REJECTED, CANARY: REJECTED, ACTIVE: REJECTED, RETIRED: REJECTED, REJECTED: REJECTED},
}


@pytest.mark.parametrize("action", ADMIN_ACTIONS)
@pytest.mark.parametrize("before", STATES)
def test_admin_command_from_every_state(action, before):
    st = with_x_in(before)
    frozen = copy.deepcopy(st)
    expected = ADMIN_TABLE[action][before]
    if expected is Refused:
        with pytest.raises(Refused):
            apply(st, Admin(action, X, 0.3), CTX)
        assert st == frozen
        return
    result = apply(st, Admin(action, X, 0.3), CTX)
    assert st == frozen, "apply must not modify its input"
    after = result.state
    assert after.adapters[X].state == expected
    check_invariants(after)
    if expected == before and action != "canary":
        assert result.changes == ()
    else:
        assert result.changes[0].adapter_id == X and result.changes[0].state == expected
        assert result.changes[0].previous == before
    # Consequences: whatever X left or took, OTHER is the active one exactly when X is not.
    if expected == ACTIVE:
        assert after.active == X and after.adapters[OTHER].state == RETIRED
        if before != ACTIVE:
            assert [c.adapter_id for c in result.changes] == [X, OTHER]
    elif before == ACTIVE:   # X left ACTIVE: rollback to OTHER (retired, in history)
        assert after.active == OTHER and [c.state for c in result.changes] == [expected, ACTIVE]
    else:
        assert after.active == OTHER


def test_admin_rollback_without_adapter_rolls_back_the_active_one():
    st = with_x_in(ACTIVE)
    after = apply(st, Admin("rollback"), CTX).state
    assert after.active == OTHER and after.adapters[X].state == RETIRED
    with pytest.raises(Refused, match="no active adapter"):
        apply(run(RegistryState(), Register(record(X))), Admin("rollback"), CTX)


@pytest.mark.parametrize("command, match", [
    (Admin("promote", "nope@1"), "unknown adapter"),
    (Admin("promote", ""), "adapter_id is required"),
    (Admin("canary", X, 1.5), "canary_share"),
    (Admin("jump", X), "unknown action"),
])
def test_admin_refusals(command, match):
    with pytest.raises(Refused, match=match):
        apply(with_x_in(CANDIDATE), command, CTX)


def test_admin_canary_uses_the_default_share_and_replaces_the_previous_canary():
    st = run(with_x_in(CANDIDATE), Register(record("y@1")), Admin("canary", "y@1", 0.5))
    result = apply(st, Admin("canary", X), Context(CTX.now, default_canary_share=0.25))
    assert result.state.canary == X and result.state.adapters[X].canary_share == 0.25
    assert result.state.adapters["y@1"].state == CANDIDATE and result.state.adapters["y@1"].canary_share == 0
    assert [(c.adapter_id, c.state) for c in result.changes] == [(X, CANARY), ("y@1", CANDIDATE)]


@pytest.mark.parametrize("action", ["canary", "promote"])
def test_unservable_or_broken_adapters_cannot_take_traffic(action):
    st = with_x_in(CANDIDATE)
    with pytest.raises(Refused, match="not servable"):
        apply(st, Admin(action, X, 0.1), Context(CTX.now, unservable=frozenset({X})))
    with pytest.raises(Refused, match="no verified local copy"):
        apply(st, Admin(action, X, 0.1), Context(CTX.now, broken=frozenset({X})))
    ignored = apply(st, Decide(X, ACTIVE if action == "promote" else CANARY, "gate", "ok", 0.1),
                    Context(CTX.now, unservable=frozenset({X})))
    assert ignored.changes == () and "cannot serve" in ignored.note


# --- decisions from the bus: the whole table -------------------------------------------------
def expected_decision(before: str, target: str) -> str:
    if before == REJECTED or (target == CANARY and before == ACTIVE):
        return before                # ignored
    return target


@pytest.mark.parametrize("target", STATES)
@pytest.mark.parametrize("before", STATES)
def test_decision_from_every_state(before, target):
    st = with_x_in(before)
    frozen = copy.deepcopy(st)
    result = apply(st, Decide(X, target, "gate", "evidence", 0.3 if target == CANARY else 0.0), CTX)
    assert st == frozen
    expected = expected_decision(before, target)
    assert result.state.adapters[X].state == expected
    check_invariants(result.state)
    if expected == before and not (target == CANARY and before == CANARY):
        assert result.changes == () and result.note
    else:
        assert result.changes[0].reason == "gate: evidence"
    # Applying the same decision again changes nothing (redelivery).
    again = apply(result.state, Decide(X, target, "gate", "evidence", 0.3 if target == CANARY else 0.0), CTX)
    assert again.changes == ()


def test_a_decision_before_registration_is_kept_and_applied_on_arrival():
    st = run(RegistryState(), Register(record(OTHER)), Admin("promote", OTHER))
    kept = apply(st, Decide(X, CANARY, "gate", "canary first", 0.1, "ev-1"), CTX)
    assert kept.pending and kept.changes == () and X in kept.state.pending
    arrived = apply(kept.state, Register(record(X)), CTX)
    assert [(c.adapter_id, c.previous, c.state) for c in arrived.changes] == [
        (X, "UNSPECIFIED", CANDIDATE), (X, CANDIDATE, CANARY)]
    assert arrived.state.canary == X and not arrived.state.pending
    with pytest.raises(Refused, match="registered already"):
        apply(arrived.state, Register(record(X)), CTX)


def test_pending_decisions_are_bounded():
    from vispod.generator.adapters.state import MAX_PENDING

    st = RegistryState()
    for i in range(MAX_PENDING + 5):
        st = apply(st, Decide(f"a@{i}", ACTIVE, "gate", "r"), CTX).state
    assert len(st.pending) == MAX_PENDING and "a@0" not in st.pending


def test_rollback_walks_back_through_history_skipping_rejected():
    ids = [f"a@{i}" for i in range(4)]
    st = run(RegistryState(), *[Register(record(a)) for a in ids], *[Admin("promote", a) for a in ids])
    assert st.history == ids[:3]
    st = run(st, Admin("reject", "a@2"), Admin("rollback"))
    assert st.active == "a@1" and st.adapters["a@3"].state == RETIRED
    st = run(st, Admin("rollback"), Admin("rollback"))
    assert st.active is None and st.adapters["a@0"].state == RETIRED   # history spent: the base model serves


def test_random_sequences_keep_the_invariants_and_are_deterministic():
    rng = random.Random(7)
    ids = [f"r@{i}" for i in range(5)]
    for _ in range(200):
        st, replay = RegistryState(), RegistryState()
        commands = []
        for _ in range(30):
            a = rng.choice(ids)
            kind = rng.random()
            if kind < 0.25:
                c = Register(record(a))
            elif kind < 0.6:
                c = Admin(rng.choice(ADMIN_ACTIONS), a, rng.choice([0.0, 0.1, 0.5]))
            else:
                target = rng.choice(STATES)
                c = Decide(a, target, "gate", "r", 0.2 if target == CANARY else 0.0)
            try:
                st = apply(st, c, CTX).state
                commands.append(c)
            except Refused:
                pass
            check_invariants(st)
        for c in commands:
            replay = apply(replay, c, CTX).state
        assert replay == st, "the same commands give the same state"
