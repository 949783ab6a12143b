"""Adapter registry: verification, lifecycle, routing, persistence (real files; events built in memory)."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest
from lifecycle_keys import identities
from prometheus_client import REGISTRY

from vispod.common.errors import InvalidArgument
from vispod.common.events import Envelope
from vispod.common.lifecycle_signing import sign_command
from vispod.devkit.testing.adapter_files import make_fake_adapter_files, published_event
from vispod.generator.adapters import AdapterRegistry, AdapterUnavailable, AdapterVersion, handlers
from vispod.v1 import events_pb2, generator_pb2

BASE = "tiny-qwen3-vl"
A = generator_pb2.UpdateAdapterRequest


def envelope(message, event_id: str | None = None) -> Envelope:
    return Envelope(id=event_id or str(uuid.uuid4()), type=message.DESCRIPTOR.full_name, source="vispod/test",
                    time="", message=message)


def failures(reason: str) -> float:
    return REGISTRY.get_sample_value("vispod_generator_adapter_load_failures_total", {"reason": reason}) or 0.0


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def make(store: Path, adapter_id: str, seed: int = 0, base: str = f"/models/{BASE}") -> events_pb2.AdapterPublished:
    name, version = adapter_id.split("@")
    folder = make_fake_adapter_files(store / name / version, base, seed)
    return published_event(folder, adapter_id, BASE)


def registry(tmp_path: Path, **kw) -> AdapterRegistry:
    return AdapterRegistry(tmp_path / "state", tmp_path / "cache", BASE, **kw)


def publish(reg: AdapterRegistry, msg, event_id: str | None = None):
    return list(reg.handle_published(envelope(msg, event_id)))


def update(reg: AdapterRegistry, adapter_id: str, action, share: float = 0.0) -> generator_pb2.AdapterInfo:
    return reg.update(A(adapter_id=adapter_id, action=action, canary_share=share))


def states(reg: AdapterRegistry) -> dict[str, str]:
    return {i.adapter_id: events_pb2.AdapterState.Name(i.state).removeprefix("ADAPTER_STATE_")
            for i in reg.list_adapters().adapters}


def test_the_registry_is_what_its_handlers_use(tmp_path):
    """The handlers see the registry through handlers.Registry (no import of the registry module, no cycle)."""
    reg = registry(tmp_path)
    assert isinstance(reg, handlers.Registry)
    del reg.command_clock
    assert not isinstance(reg, handlers.Registry)


def test_publish_verifies_copies_and_registers_candidate(tmp_path, store):
    reg = registry(tmp_path)
    msg = make(store, "sporc@1")
    (store / "sporc" / "1" / "notes.txt").write_text("not in the manifest")
    outputs = publish(reg, msg)
    assert len(outputs) == 1 and outputs[0].message.state == events_pb2.ADAPTER_STATE_CANDIDATE
    assert outputs[0].message.actor == "generator"
    assert states(reg) == {"sporc@1": "CANDIDATE"}
    version = reg.resolve("sporc@1", "k")
    assert version.local_path == tmp_path / "cache" / "sporc" / "1"
    assert sorted(p.name for p in version.local_path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert reg.resolve("", "k") is None, "a candidate gets no default traffic"
    assert reg.resolve("base", "k") is None
    assert not list((tmp_path / "cache" / ".tmp").iterdir()), "no staging leftovers"


@pytest.mark.parametrize("tamper, reason", [
    ("weights", "sha256_mismatch"),
    ("traversal", "bad_path"),
    ("missing_config", "missing_file"),
    ("base_model", "base_model_mismatch"),
    ("bad_id", "bad_event"),
])
def test_bad_artifacts_are_rejected_and_change_nothing(tmp_path, store, tamper, reason):
    reg = registry(tmp_path)
    publish(reg, make(store, "good@1"))
    update(reg, "good@1", A.ACTION_PROMOTE)
    msg = make(store, "evil@1", seed=1)
    folder = store / "evil" / "1"
    if tamper == "weights":
        data = bytearray((folder / "adapter_model.safetensors").read_bytes())
        data[-1] ^= 0xFF
        (folder / "adapter_model.safetensors").write_bytes(bytes(data))
    elif tamper == "traversal":
        msg.file_sha256["../../../etc/passwd"] = "0" * 64
    elif tamper == "missing_config":
        del msg.file_sha256["adapter_config.json"]
    elif tamper == "base_model":
        make_fake_adapter_files(folder, "/models/some-other-model", seed=1)
        msg = published_event(folder, "evil@1", BASE)
    elif tamper == "bad_id":
        msg.adapter_id, msg.name, msg.version = "../evil@1", "", ""
    before_state = (tmp_path / "state" / "adapters.json").read_text()
    before = failures(reason)
    with pytest.raises(InvalidArgument, match=reason):
        publish(reg, msg)
    assert failures(reason) == before + 1
    assert states(reg) == {"good@1": "ACTIVE"}
    assert (tmp_path / "state" / "adapters.json").read_text() == before_state
    assert not (tmp_path / "cache" / "evil").exists()
    assert reg.resolve("", "k").adapter_id == "good@1"
    with pytest.raises(AdapterUnavailable):
        reg.resolve("evil@1", "k")


def skipped(reason: str) -> float:
    return REGISTRY.get_sample_value("vispod_generator_adapter_events_skipped_total", {"reason": reason}) or 0.0


def test_an_adapter_announced_for_another_base_is_skipped_not_dead_lettered(tmp_path, store):
    """Generator pools of different base models share adapter.published: another pool's adapter is not bad input.
    It is skipped without a download, counted apart, and no load failure (a critical alert) is recorded."""
    reg = registry(tmp_path)
    publish(reg, make(store, "good@1"))
    update(reg, "good@1", A.ACTION_PROMOTE)
    msg = make(store, "theirs@1", seed=1)
    msg.base_model_id = "Qwen/Qwen2.5-VL-7B-Instruct"
    before_state = (tmp_path / "state" / "adapters.json").read_text()
    before = (skipped("other_base_model"), failures("base_model_mismatch"))
    assert publish(reg, msg) == []
    assert (skipped("other_base_model"), failures("base_model_mismatch")) == (before[0] + 1, before[1])
    assert states(reg) == {"good@1": "ACTIVE"} and not (tmp_path / "cache" / "theirs").exists()
    assert (tmp_path / "state" / "adapters.json").read_text() == before_state
    # an event that claims our base while its files name another is still a bad artifact: dead-lettered
    make_fake_adapter_files(store / "liar" / "1", "/models/some-other-model", seed=2)
    with pytest.raises(InvalidArgument, match="base_model_mismatch"):
        publish(reg, published_event(store / "liar" / "1", "liar@1", BASE))
    assert failures("base_model_mismatch") == before[1] + 1


def test_symlink_out_of_the_artifact_folder_is_rejected(tmp_path, store):
    reg = registry(tmp_path)
    msg = make(store, "link@1")
    secret = tmp_path / "secret.json"
    secret.write_text((store / "link" / "1" / "adapter_config.json").read_text())
    (store / "link" / "1" / "adapter_config.json").unlink()
    (store / "link" / "1" / "adapter_config.json").symlink_to(secret)
    with pytest.raises(InvalidArgument, match="bad_path"):
        publish(reg, msg)


def test_file_roots_confine_artifacts(tmp_path, store):
    from vispod.generator.adapters import ArtifactFetcher

    reg = registry(tmp_path, artifact_fetcher=ArtifactFetcher(file_roots=[tmp_path / "elsewhere"]))
    with pytest.raises(InvalidArgument, match="outside the allowed artifact roots"):
        publish(reg, make(store, "a@1"))


def test_base_model_check_modes(tmp_path, store):
    msg = make(store, "a@1", base="/somewhere/else/tiny-qwen3-vl")
    strict = AdapterRegistry(tmp_path / "s1", tmp_path / "c1", BASE, base_model_check="strict")
    with pytest.raises(InvalidArgument, match="base_model_mismatch"):
        publish(strict, msg)
    assert publish(registry(tmp_path), msg), "name mode: the same model folder name is the same base"
    other = make(store, "b@1", base="/models/other")
    off = AdapterRegistry(tmp_path / "s2", tmp_path / "c2", BASE, base_model_check="off")
    assert publish(off, other)


@pytest.mark.parametrize("theirs, same", [
    ("/models/Qwen3-VL-8B-Instruct/", True),
    ("Qwen/Qwen3-VL-8B-Instruct", True),
    ("/hf/hub/models--Qwen--Qwen3-VL-8B-Instruct/snapshots/0123abc", True),
    ("Qwen/Qwen2.5-VL-7B-Instruct", False),
])
def test_base_model_names_compare_by_model_name(theirs, same):
    from vispod.generator.adapters.verify import AdapterRejected, check_base_model

    ours = "qwen3-vl-8b-instruct"
    if same:
        check_base_model(ours, theirs, "", "name")
    else:
        with pytest.raises(AdapterRejected):
            check_base_model(ours, theirs, "", "name")


def test_immutable_ids_and_redelivery(tmp_path, store):
    reg = registry(tmp_path)
    msg = make(store, "sporc@1")
    first = publish(reg, msg, event_id="e1")
    # The same event again (its commit was lost): same output, state untouched.
    assert publish(reg, msg, event_id="e1") == first
    # The same content under a new event id: a no-op.
    assert publish(reg, msg, event_id="e2") == []
    update(reg, "sporc@1", A.ACTION_PROMOTE)
    assert publish(reg, msg, event_id="e1") == [], "no CANDIDATE event for an adapter that moved on"
    # A different artifact under the same id: refused, the registered one stays.
    other = make(store / "x", "sporc@1", seed=5)
    before = failures("id_conflict")
    with pytest.raises(InvalidArgument, match="id_conflict"):
        publish(reg, other)
    assert failures("id_conflict") == before + 1
    assert states(reg) == {"sporc@1": "ACTIVE"}


def test_lifecycle_canary_promote_rollback(tmp_path, store):
    reg = registry(tmp_path)
    for i in (1, 2, 3):
        publish(reg, make(store, f"sporc@{i}", seed=i))
    update(reg, "sporc@1", A.ACTION_PROMOTE)
    info = update(reg, "sporc@2", A.ACTION_CANARY, share=0.25)
    assert info.state == events_pb2.ADAPTER_STATE_CANARY and info.canary_share == 0.25
    keys = [f"image-set-{i}" for i in range(4000)]
    routed = [reg.resolve("", k).adapter_id for k in keys]
    share = routed.count("sporc@2") / len(keys)
    assert 0.22 < share < 0.28
    assert set(routed) == {"sporc@1", "sporc@2"}
    assert [reg.resolve("", k).adapter_id for k in keys] == routed, "deterministic per routing key"
    assert REGISTRY.get_sample_value("vispod_generator_adapter_state", {"state": "CANARY"}) == 1
    # Canary rollback: back to candidate, all traffic on the active one.
    update(reg, "sporc@2", A.ACTION_ROLLBACK)
    assert states(reg)["sporc@2"] == "CANDIDATE"
    assert {reg.resolve("", k).adapter_id for k in keys[:200]} == {"sporc@1"}
    # Promote 2 then 3; rollback walks back through the previous actives.
    update(reg, "sporc@2", A.ACTION_PROMOTE)
    update(reg, "sporc@3", A.ACTION_CANARY, share=0.5)
    update(reg, "sporc@3", A.ACTION_PROMOTE)
    assert states(reg) == {"sporc@1": "RETIRED", "sporc@2": "RETIRED", "sporc@3": "ACTIVE"}
    assert reg.list_adapters().active_adapter_id == "sporc@3"
    update(reg, "", A.ACTION_ROLLBACK)      # empty id: the active one
    assert states(reg) == {"sporc@1": "RETIRED", "sporc@2": "ACTIVE", "sporc@3": "RETIRED"}
    update(reg, "sporc@2", A.ACTION_ROLLBACK)
    assert reg.resolve("", "k").adapter_id == "sporc@1"
    update(reg, "sporc@1", A.ACTION_ROLLBACK)
    assert reg.resolve("", "k") is None, "no previous active left: the base model"
    assert REGISTRY.get_sample_value("vispod_generator_adapter_state", {"state": "ACTIVE"}) == 0


def test_admin_errors_are_invalid_argument(tmp_path, store):
    reg = registry(tmp_path)
    publish(reg, make(store, "a@1"))
    with pytest.raises(InvalidArgument, match="unknown adapter"):
        update(reg, "nope@1", A.ACTION_PROMOTE)
    with pytest.raises(InvalidArgument, match="canary_share"):
        update(reg, "a@1", A.ACTION_CANARY, share=1.5)
    with pytest.raises(InvalidArgument, match="only the active adapter or a canary"):
        update(reg, "a@1", A.ACTION_ROLLBACK)
    with pytest.raises(InvalidArgument, match="no active adapter"):
        update(reg, "", A.ACTION_ROLLBACK)
    update(reg, "a@1", A.ACTION_REJECT)
    with pytest.raises(InvalidArgument, match="REJECTED"):
        update(reg, "a@1", A.ACTION_PROMOTE)
    with pytest.raises(AdapterUnavailable):
        reg.resolve("a@1", "k")


def test_servable_veto_and_on_loaded(tmp_path, store):
    loaded: list[str] = []
    started_with = {"a@1"}
    reg = registry(tmp_path, servable=lambda a: a in started_with, on_loaded=lambda v: loaded.append(v.adapter_id))
    publish(reg, make(store, "a@1"))
    publish(reg, make(store, "b@1", seed=2))
    assert loaded == ["a@1", "b@1"]
    assert reg.resolve("a@1", "k").adapter_id == "a@1"
    with pytest.raises(AdapterUnavailable, match="not servable"):
        reg.resolve("b@1", "k")
    with pytest.raises(InvalidArgument, match="not servable"):
        update(reg, "b@1", A.ACTION_PROMOTE)
    update(reg, "a@1", A.ACTION_PROMOTE)
    started_with.clear()   # e.g. the engine restarted without it: never fall back to the base silently
    with pytest.raises(AdapterUnavailable):
        reg.resolve("", "k")


def test_engine_load_failure_is_retried_lazily(tmp_path, store):
    attempts: list[str] = []

    def on_loaded(v: AdapterVersion) -> None:
        attempts.append(v.adapter_id)
        if len(attempts) < 3:
            raise ConnectionError("engine down")

    reg = registry(tmp_path, on_loaded=on_loaded)
    publish(reg, make(store, "a@1"))              # registered even though the engine refused
    with pytest.raises(AdapterUnavailable, match="engine down"):
        reg.resolve("a@1", "k")
    assert reg.resolve("a@1", "k").adapter_id == "a@1"
    assert reg.resolve("a@1", "k").adapter_id == "a@1"
    assert len(attempts) == 3


def test_restart_keeps_state_and_refetches_a_lost_cache(tmp_path, store):
    reg = registry(tmp_path)
    for i in (1, 2):
        publish(reg, make(store, f"a@{i}", seed=i))
    update(reg, "a@1", A.ACTION_PROMOTE)
    update(reg, "a@2", A.ACTION_CANARY, share=0.5)
    keys = [str(i) for i in range(200)]
    routed = [reg.resolve("", k).adapter_id for k in keys]
    doc = json.loads((tmp_path / "state" / "adapters.json").read_text())
    assert doc["active"] == "a@1" and doc["canary"] == "a@2"

    again = registry(tmp_path)
    assert states(again) == {"a@1": "ACTIVE", "a@2": "CANARY"}
    assert [again.resolve("", k).adapter_id for k in keys] == routed

    # The cache lives on an emptyDir in production: a restart re-fetches and re-verifies it.
    import shutil
    shutil.rmtree(tmp_path / "cache")
    third = registry(tmp_path)
    assert third.resolve("", "0").local_path.joinpath("adapter_model.safetensors").exists()
    # ... and refuses to serve a copy it cannot verify any more.
    shutil.rmtree(tmp_path / "cache")
    (store / "a" / "1" / "adapter_config.json").write_text("{}")
    fourth = registry(tmp_path)
    with pytest.raises(AdapterUnavailable, match="no verified local copy"):
        fourth.resolve("a@1", "k")


def test_gate_decisions_are_applied_idempotently(tmp_path, store):
    ids = identities()
    reg = registry(tmp_path, keyring=ids.keyring)
    publish(reg, make(store, "a@1"))
    update(reg, "a@1", A.ACTION_PROMOTE)

    def decision(adapter_id: str, state: int, actor: str = "gate", share: float = 0.0, event_id: str | None = None):
        msg = events_pb2.AdapterLifecycleChanged(adapter_id=adapter_id, state=state, actor=actor, canary_share=share,
                                                 reason="win rate lower bound 0.61", evidence={"win_rate_lower": 0.61})
        if actor == "gate":
            sign_command(msg, ids.gate)
        return list(reg.handle_lifecycle(envelope(msg, event_id)))

    # A decision for an adapter whose AdapterPublished has not arrived yet is kept and applied on arrival.
    assert decision("b@1", events_pb2.ADAPTER_STATE_CANARY, share=0.3) == []
    assert states(reg) == {"a@1": "ACTIVE"}
    publish(reg, make(store, "b@1", seed=2))
    assert states(reg)["b@1"] == "CANARY"
    decision("b@1", events_pb2.ADAPTER_STATE_ACTIVE)
    decision("b@1", events_pb2.ADAPTER_STATE_ACTIVE)       # redelivered: no change
    assert states(reg) == {"a@1": "RETIRED", "b@1": "ACTIVE"}
    # Events this generator emitted (actor generator) are not decisions.
    decision("a@1", events_pb2.ADAPTER_STATE_ACTIVE, actor="generator")
    assert reg.active_adapter_id == "b@1"
    # A gate rejection of the active adapter rolls back to the previous one.
    decision("b@1", events_pb2.ADAPTER_STATE_REJECTED)
    assert states(reg) == {"a@1": "ACTIVE", "b@1": "REJECTED"}
    decision("b@1", events_pb2.ADAPTER_STATE_ACTIVE)       # never un-reject
    assert reg.active_adapter_id == "a@1"
    with pytest.raises(InvalidArgument):
        decision("b@1", events_pb2.ADAPTER_STATE_CANARY, share=0.0)


def test_own_admin_events_are_not_reapplied(tmp_path, store, kafka):
    from vispod.common.bus import EventPublisher, EventReader, ensure_topics
    from vispod.common.topics import Topic

    ensure_topics(kafka)
    publisher = EventPublisher(kafka, "generator")
    ids = identities()
    try:
        reg = registry(tmp_path, publisher=publisher, signer=ids.admin)
        publish(reg, make(store, "a@1"))
        publish(reg, make(store, "b@1", seed=2))
        update(reg, "a@1", A.ACTION_PROMOTE)
        update(reg, "b@1", A.ACTION_PROMOTE)
        update(reg, "b@1", A.ACTION_ROLLBACK)
    finally:
        publisher.close()
    reader = EventReader(kafka, [Topic.ADAPTER_LIFECYCLE])
    try:
        published = reader.read(5, timeout=20)
    finally:
        reader.close()
    assert [(e.message.adapter_id, e.message.state, e.message.actor) for e in published] == [
        ("a@1", events_pb2.ADAPTER_STATE_ACTIVE, "admin"),
        ("b@1", events_pb2.ADAPTER_STATE_ACTIVE, "admin"),
        ("a@1", events_pb2.ADAPTER_STATE_RETIRED, "admin"),
        ("b@1", events_pb2.ADAPTER_STATE_RETIRED, "admin"),
        ("a@1", events_pb2.ADAPTER_STATE_ACTIVE, "admin"),
    ]
    # Our own stale "b@1 ACTIVE" read back from the topic must not undo the rollback (even after a restart).
    again = registry(tmp_path)
    for env in published:
        again.handle_lifecycle(env)
    assert again.active_adapter_id == "a@1"
    # Another replica applies the admin events in order and reaches the same state.
    replica = AdapterRegistry(tmp_path / "state2", tmp_path / "cache2", BASE, keyring=ids.keyring)
    publish(replica, make(store, "a@1"))
    publish(replica, make(store, "b@1", seed=2))
    for env in published:
        replica.handle_lifecycle(env)
    assert states(replica) == states(reg)


def test_resolve_is_consistent_while_states_change(tmp_path, store):
    reg = registry(tmp_path)
    ids = [f"a@{i}" for i in range(4)]
    for i, a in enumerate(ids):
        publish(reg, make(store, a, seed=i))
    update(reg, ids[0], A.ACTION_PROMOTE)
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: set[str] = set()

    def reader(n: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                v = reg.resolve("", f"{n}-{i}")
                assert v is not None and v.adapter_id in ids and v.local_path.is_dir()
                seen.add(v.adapter_id)
            except BaseException as exc:  # surfaced below
                errors.append(exc)
                return
            i += 1

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for round_ in range(15):
        target = ids[1 + round_ % 3]
        update(reg, target, A.ACTION_CANARY, share=0.5)
        update(reg, target, A.ACTION_PROMOTE)
        update(reg, target, A.ACTION_ROLLBACK)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:1]
    assert len(seen) > 1
    assert reg.active_adapter_id == ids[0]


def test_on_retired_hook_and_reload_after_rollback(tmp_path, store):
    loaded: list[str] = []
    retired: list[str] = []
    reg = registry(tmp_path, on_loaded=lambda v: loaded.append(v.adapter_id), on_retired=retired.append)
    publish(reg, make(store, "a@1"))
    publish(reg, make(store, "b@1", seed=2))
    update(reg, "a@1", A.ACTION_PROMOTE)
    update(reg, "b@1", A.ACTION_PROMOTE)
    assert retired == ["a@1"]
    update(reg, "b@1", A.ACTION_ROLLBACK)
    assert retired == ["a@1", "b@1"]
    assert reg.resolve("", "k").adapter_id == "a@1"
    assert loaded == ["a@1", "b@1", "a@1"], "the backend was asked to load the restored adapter again"


def test_an_adapter_whose_files_are_gone_is_named_when_it_cannot_be_restored(tmp_path, store, caplog):
    import shutil

    reg = registry(tmp_path)
    publish(reg, make(store, "gone@1"))
    shutil.rmtree(store)
    shutil.rmtree(tmp_path / "cache")
    before = failures("restore")
    with caplog.at_level("ERROR", logger="vispod.generator.adapters.registry"):
        restarted = registry(tmp_path)
    assert failures("restore") == before + 1
    [line] = [r.getMessage() for r in caplog.records if "cannot be restored" in r.getMessage()]
    assert "gone@1" in line, "the console line names the adapter, not only the structured fields"
    with pytest.raises(AdapterUnavailable):
        restarted.resolve("gone@1", "k")
