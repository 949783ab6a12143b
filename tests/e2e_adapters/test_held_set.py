"""What an engine holds is decided by lifecycle state, on both engine paths: ten candidates published after the active
adapter, all rejected, and the active one is still served — through vLLM's API (adapter-sync loading and unloading
at run time) and through a TGI rollout (a Deployment patched over the Kubernetes API, the engine restarted with the
new LORA_ADAPTERS). TGI restarts only when the held set gains an adapter; a starting generator converges in one
patch; the gate's `servable` flag turns true only once the engine holds the candidate.

Before this rule both paths kept "the newest 4" versions and the fifth new candidate evicted the active adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kube_api import TOKEN, FakeDeploymentApi
from safetensors.torch import save_file
from vllm_api_engine import VLLMApiEngine

from vispod.adaptersync.lifecycle import view_of
from vispod.adaptersync.sync import AdapterSync
from vispod.common.adapter_store import AdapterStore, FilesystemObjects
from vispod.common.adapter_store.retention import LifecycleView, held_adapters
from vispod.common.artifacts import sha256_file
from vispod.common.http_retry import RetryPolicy
from vispod.common.llm_server import LoraServer
from vispod.common.signing import Keyring, Signer
from vispod.generator.adapters import AdapterVersion
from vispod.generator.adapters.handlers import list_adapters
from vispod.generator.adapters.lifecycle import Decide, Register
from vispod.generator.adapters.registry import AdapterRegistry
from vispod.generator.adapters.state import AdapterRecord
from vispod.generator.adapters.verify import AdapterRejected
from vispod.generator.backends.base import GenerationInput
from vispod.generator.backends.engine_adapters import EngineAdapters, headless_replicas
from vispod.generator.backends.openai import OpenAIBackend
from vispod.generator.backends.tgi import TGIBackend
from vispod.generator.backends.tgi_rollout import KubernetesRollout
from vispod.v1.events_pb2 import AdapterPublished

TRAINER = Signer(Ed25519PrivateKey.generate(), "trainer")
KEYRING = Keyring({"trainer": TRAINER.public_key})
FAST = RetryPolicy(max_retries=1, backoff_base_s=0.01, backoff_max_s=0.1)


def publish(store: AdapterStore, root: Path, version: int) -> AdapterRecord:
    """A signed version in the store (the trainer's part) and its registry record (the generator's part)."""
    folder = root / f"podcast-{version}"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    names = [f"base_model.model.model.layers.0.self_attn.{p}_proj.lora_{m}.weight" for p in "qv" for m in "AB"]
    save_file({n: torch.full((4, 4), float(version)) for n in names}, str(folder / "adapter_model.safetensors"))
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir())}
    manifest = {"adapter_id": f"podcast@{version}", "name": "podcast", "version": str(version),
                "base_model_id": "smollm2", "base_model_revision": "sha256:" + "0" * 64, "lora_rank": 4,
                "dataset_manifest_sha256": "d" * 64, "files": files}
    stored = store.publish(folder, manifest, TRAINER)
    return AdapterRecord(adapter_id=stored.adapter_id, state="CANDIDATE", base_model_id="smollm2",
                         artifact_uri=stored.uri, local_path=str(folder), file_sha256=files)


def ask(backend: OpenAIBackend | TGIBackend, adapter_id: str) -> str:
    inp = GenerationInput(system="You write podcasts.", user="Scenes: a beach.", max_new_tokens=16,
                          adapter=AdapterVersion(adapter_id, Path("/generator-pod") / adapter_id, "smollm2"))
    return "".join(backend.stream(inp))


def test_the_held_set_pins_active_canary_and_previous_active() -> None:
    states = {"p@1": "RETIRED", "p@2": "ACTIVE", "p@3": "REJECTED", "p@4": "CANARY", "p@5": "CANDIDATE",
              "p@6": "CANDIDATE", "p@7": "RETIRED"}
    view = LifecycleView(states, previous_active="p@1")
    assert held_adapters(view, 1) == ("p@2", "p@4", "p@1", "p@6")
    assert held_adapters(view, 0) == ("p@2", "p@4", "p@1")
    assert held_adapters(view, 8) == ("p@2", "p@4", "p@1", "p@6", "p@5")
    with pytest.raises(ValueError):
        held_adapters(view, 9)


@pytest.fixture
def engines(tmp_path: Path):
    vllm, tgi = VLLMApiEngine(None, "smollm2", tmp_path / "x"), VLLMApiEngine(None, "smollm2", tmp_path / "y")

    def restart_tgi(adapters: list[str]) -> None:   # TGI reads LORA_ADAPTERS at start-up only
        with tgi.lock:
            tgi.adapters = {a: AdapterVersion(a, tmp_path / "tgi-volume" / a, "smollm2") for a in adapters}

    api = FakeDeploymentApi("vispod", "tgi", restart_tgi)
    yield vllm, tgi, api
    for e in (vllm, tgi):
        e.stop()
    api.stop()


def service_account(folder: Path) -> Path:
    folder.mkdir()
    (folder / "token").write_text(TOKEN)
    (folder / "namespace").write_text("vispod")
    return folder


def test_ten_rejected_candidates_never_evict_the_active_adapter(engines, tmp_path: Path) -> None:
    vllm_engine, tgi_engine, api = engines
    store = AdapterStore(FilesystemObjects(tmp_path / "store"))
    # The vLLM generator routes to what vLLM lists; its engine's adapter-sync reads the lifecycle from it.
    openai = OpenAIBackend(vllm_engine.url, "smollm2", text_only=True, retry=FAST, adapter_loading="sync")
    openai.listed.ttl_s = 0.0   # ask the engine every time (the routing cache is a production optimisation)
    vllm_gen = AdapterRegistry(tmp_path / "v-state", tmp_path / "v-cache", "smollm2", servable=openai.servable)
    engine = LoraServer(vllm_engine.url)
    sync = AdapterSync(store, KEYRING, tmp_path / "volume", engine, lambda: view_of(list_adapters(vllm_gen)),
                       candidate_slots=1)
    # The TGI generator rolls its Deployment with the held set, over the Kubernetes API.
    rollout = KubernetesRollout("tgi", base_url=tgi_engine.url, api_url=api.url,
                                service_account=service_account(tmp_path / "sa"))
    tgi = TGIBackend("", [], text_only=True, retry=FAST, rollout=rollout)
    tgi_gen = AdapterRegistry(tmp_path / "t-state", tmp_path / "t-cache", "smollm2", servable=tgi.servable,
                              on_held=tgi.hold, candidate_slots=1)
    tgi_gen.replayed()
    history = []

    def command(cmd) -> None:
        history.append(cmd)
        for reg in (vllm_gen, tgi_gen):
            reg.after(reg.execute(cmd).changes)

    def servable(adapter_id: str) -> dict[str, bool]:
        """What the gate reads before it evaluates: ListAdapters' servable flag on each generator."""
        return {name: next(a.servable for a in list_adapters(reg).adapters if a.adapter_id == adapter_id)
                for name, reg in (("vllm", vllm_gen), ("tgi", tgi_gen))}

    command(Register(publish(store, tmp_path / "trainer", 1)))
    assert servable("podcast@1") == {"vllm": False, "tgi": True}   # TGI restarted with it; vLLM not synced yet
    assert sync.reconcile().loaded == ["podcast@1"]
    assert servable("podcast@1") == {"vllm": True, "tgi": True}
    command(Decide("podcast@1", "ACTIVE", "gate", "passed"))
    assert vllm_gen.active_adapter_id == tgi_gen.active_adapter_id == "podcast@1"

    for v in range(2, 12):
        candidate = f"podcast@{v}"
        command(Register(publish(store, tmp_path / "trainer", v)))
        assert servable(candidate)["tgi"] and not servable(candidate)["vllm"]
        assert vllm_gen.check_held() == [candidate]   # what the sync-failure alert counts until the sync catches up
        report = sync.reconcile()
        assert report.loaded == [candidate] and report.held == ("podcast@1", candidate)
        assert servable(candidate) == {"vllm": True, "tgi": True}   # now the gate may evaluate it
        assert vllm_gen.check_held() == tgi_gen.check_held() == []
        command(Decide(candidate, "REJECTED", "gate", "win rate below the bar"))
        assert sync.reconcile().unloaded == [candidate]
        assert engine.adapters() == {"podcast@1"}
        assert "podcast@1" in api.restarts[-1]

    # Both paths still serve the active adapter, by default and by name.
    for reg, backend, served in ((vllm_gen, openai, vllm_engine), (tgi_gen, tgi, tgi_engine)):
        assert reg.resolve("", "image-set-1").adapter_id == "podcast@1"
        assert "podcast@1" in ask(backend, "podcast@1") and served.log.served[-1] == "podcast@1"
    # TGI restarted once per adapter it had to gain (the active one, then each candidate's slot), never for a
    # rejection; the engine never held more than the bound (3 pinned + 1 candidate).
    assert len(api.restarts) == 11 and all(len(r) <= 4 for r in api.restarts)
    assert all("podcast@1" in r for r in api.restarts)

    # A generator starting up replays the whole history, then hands its engine the held set in one patch.
    fresh_api = FakeDeploymentApi("vispod", "tgi", lambda adapters: None)
    try:
        fresh = TGIBackend("", [], text_only=True, retry=FAST, rollout=KubernetesRollout(
            "tgi", base_url=tgi_engine.url, api_url=fresh_api.url, ttl_s=0.0,
            service_account=tmp_path / "sa"))
        starting = AdapterRegistry(tmp_path / "s-state", tmp_path / "s-cache", "smollm2", on_held=fresh.hold,
                                   candidate_slots=1)
        for cmd in history:
            starting.after(starting.execute(cmd).changes)
        assert fresh_api.restarts == []
        starting.replayed()
        assert fresh_api.restarts == [["podcast@1"]]
    finally:
        fresh_api.stop()


def test_a_version_trained_on_another_base_is_never_loaded_or_registered(engines, tmp_path: Path) -> None:
    """Base identity by content: the served base's digest against the one the trainer signed into the manifest."""
    vllm_engine = engines[0]
    store = AdapterStore(FilesystemObjects(tmp_path / "store"))
    record = publish(store, tmp_path / "trainer", 1)               # its manifest names base sha256:000…0
    trained_on, other = "sha256:" + "0" * 64, "sha256:" + "1" * 64
    view = LifecycleView({record.adapter_id: "CANDIDATE"})
    engine = LoraServer(vllm_engine.url)
    wrong = AdapterSync(store, KEYRING, tmp_path / "v1", engine, lambda: view, base_model_digest=other)
    report = wrong.reconcile()
    assert report.rejected == {"podcast@1": "base_model_mismatch"} and engine.adapters() == set()
    assert not (tmp_path / "v1" / "podcast").exists()              # nothing was even fetched
    right = AdapterSync(store, KEYRING, tmp_path / "v2", engine, lambda: view, base_model_digest=trained_on)
    assert right.reconcile().loaded == ["podcast@1"]

    # The generator refuses to register it (so it is never routed to or promoted), before any download.
    installer = AdapterRegistry(tmp_path / "g-state", tmp_path / "g-cache", "smollm2",
                                base_model_digest=other).installer
    event = AdapterPublished(adapter_id="podcast@1", artifact_uri=record.artifact_uri, base_model_id="smollm2",
                             base_model_revision=trained_on, file_sha256=record.file_sha256)
    with pytest.raises(AdapterRejected, match="trained on base sha256:0000"):
        installer.check_event(event)
    installer.base_model_digest = trained_on
    assert installer.check_event(event)[0] == "podcast@1"


def test_with_two_replicas_an_adapter_is_routed_only_once_every_replica_holds_it(tmp_path: Path) -> None:
    """Each vLLM replica has its own adapter-sync; the generator asks every replica (a headless Service resolves
    to each pod) and routes to an adapter only when all of them list it, so no request meets a replica without it."""
    replicas = [VLLMApiEngine(None, "smollm2", tmp_path / f"r{i}") for i in range(2)]
    try:
        store = AdapterStore(FilesystemObjects(tmp_path / "store"))
        record = publish(store, tmp_path / "trainer", 1)
        view = LifecycleView({record.adapter_id: "ACTIVE"})
        syncs = [AdapterSync(store, KEYRING, tmp_path / f"volume-{i}", LoraServer(r.url), lambda: view)
                 for i, r in enumerate(replicas)]
        # The Service address is the first replica here; the replica list is what the headless name resolves to.
        backend = OpenAIBackend(replicas[0].url, "smollm2", text_only=True, retry=FAST, adapter_loading="sync")
        backend.listed = EngineAdapters(LoraServer(replicas[0].url), ttl_s=0.0,
                                        replicas=lambda: [r.url for r in replicas])
        syncs[0].reconcile()
        assert not backend.servable("podcast@1")        # replica 1 has not loaded it yet
        syncs[1].reconcile()
        assert backend.servable("podcast@1") and "podcast@1" in ask(backend, "podcast@1")
        assert [r.log.served for r in replicas] == [["podcast@1"], []]
    finally:
        for r in replicas:
            r.stop()


def test_a_headless_name_resolves_to_one_url_per_address() -> None:
    assert headless_replicas("http://localhost:8000/v1")() in (["http://127.0.0.1:8000/v1"],
                                                              ["http://127.0.0.1:8000/v1", "http://[::1]:8000/v1"])
