"""The trainer under torchrun (2 CPU processes, gloo, FSDP2) against one plain process on the same data and seed.

A tiny random Qwen3-VL, 8 pairs (2 held out), effective batch 3: three micro-batches a step, so rank 0 runs two and
rank 1 one real and one empty, and LoRA dropout and NEFTune are on: the per-micro-batch seeds, the global loss
normalisation and the gradient sum over ranks must all be right for the weights to agree.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from conftest import tiny_settings
from safetensors.torch import load_file

from vispod.common.adapter_store import AdapterStore
from vispod.common.adapter_store.objects import open_objects
from vispod.common.bus import ensure_topics, read_events
from vispod.common.signing import Keyring, generate_keypair
from vispod.common.topics import Topic
from vispod.devkit.testing.sample_pairs import write_sample_pairs
from vispod.trainer.checkpoint import list_checkpoints
from vispod.trainer.run import run_training

TOLERANCE = 1e-4  # the target for fp32; measured differences are ~1e-5
RECIPE = dict(effective_batch_size=3, micro_batch_size=1, max_steps=8, learning_rate=1e-2, eval_fraction=0.25,
              checkpoint_every_steps=2, lora_dropout=0.05, neftune_alpha=5.0, seed=7)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_pairs(tmp_path_factory.mktemp("dist-pairs") / "pairs", n=8)


@pytest.fixture(scope="module")
def one_process(tiny_model: Path, pairs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The reference: the same recipe in one plain process (no torchrun, no process group, no FSDP)."""
    out = tmp_path_factory.mktemp("one-process")
    outcome = run_training(tiny_settings(tiny_model, pairs, out, **RECIPE))
    return {"weights": load_file(str(outcome.result.adapter_dir / "adapter_model.safetensors")),
            "losses": outcome.result.losses}


def _env(model: Path, pairs: Path, out: Path, kafka, store: Path, key: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISPOD_")}
    env.update({f"VISPOD_TRAINER_{k.upper()}": str(v) for k, v in RECIPE.items()})
    env.update(VISPOD_TRAINER_BASE_MODEL=str(model), VISPOD_TRAINER_PAIRS_DIR=str(pairs),
               VISPOD_TRAINER_OUTPUT_DIR=str(out), VISPOD_TRAINER_RESUME="true", VISPOD_TRAINER_TORCH_THREADS="1",
               VISPOD_TRAINER_SERVE_METRICS="false", VISPOD_TRAINER_ADAPTER_NAME="dist",
               VISPOD_KAFKA_BOOTSTRAP=kafka.bootstrap, VISPOD_KAFKA_TOPIC_PREFIX=kafka.topic_prefix,
               VISPOD_ADAPTER_STORE_URL=store.as_uri(), VISPOD_ADAPTER_STORE_SIGNING_KEY_FILE=str(key),
               OMP_NUM_THREADS="1")
    return env


def _launch(env: dict[str, str], stderr: Path) -> subprocess.Popen:
    """torchrun (through vispod.trainer.launch) with 2 ranks on this machine and no restarts in place, as in the
    chart (Kubernetes replaces a failed gang); stderr to a file (never a full pipe)."""
    cmd = [sys.executable, "-m", "vispod.trainer.launch", "--standalone", "--nproc-per-node", "2",
           "--max-restarts", "0", "--monitor-interval", "0.1", "-m", "vispod.trainer"]
    with stderr.open("w") as err:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)


def _gang(env: dict[str, str], stderr: Path, start_over: Path | None = None) -> str:
    """A gang run to its end, as the chart's Job runs it: a gang whose rank a signal killed (launcher exit 1, not the
    refusals 2 and 3 that fail the Job) is replaced once, as backoffLimit does; `start_over`: the output folder to
    empty first, for a test that asserts a whole run. Returns the last gang's stdout; a second failure fails.
    Under the full suite on 2 cores a rank once died of SIGABRT ("terminate called without an active exception")
    right after loading; not reproduced in 12 runs of this file alone, in a loopback-only namespace or under load."""
    proc = _launch(env, stderr)
    stdout, _ = proc.communicate(timeout=300)
    if proc.returncode == 1 and "Signal" in stderr.read_text():
        warnings.warn(f"a rank of the gang died of a signal; the gang is replaced once as the Job would: "
                      f"{stderr.read_text()[-600:]}", stacklevel=2)
        if start_over is not None:
            shutil.rmtree(start_over, ignore_errors=True)
        proc = _launch(env, stderr)
        stdout, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.read_text()[-3000:]
    return stdout


def _progress(line: str) -> dict | None:
    try:
        doc = json.loads(line)
    except json.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) and "event" in doc else None


def _worker_pid(launcher: int, rank: int) -> int:
    """The pid of the worker that torchrun started as `rank` (its child whose environment says RANK=rank)."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    for pid in children:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    raise AssertionError(f"no worker with RANK={rank} among {children}")


def _store(tmp_path: Path) -> tuple[Path, Path, Keyring]:
    key, pub = generate_keypair(tmp_path / "keys", "trainer")
    return tmp_path / "store", key, Keyring.from_dir(pub.parent)


def _assert_same_weights(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys() and len(want) == 2 * 7 * 2  # A and B of 7 projections in 2 layers
    worst = max(float((got[k] - want[k]).abs().max()) for k in want)
    assert worst < TOLERANCE, worst
    assert any(float(want[k].abs().max()) > 0.01 for k in want if "lora_B" in k)  # it trained: B moved from 0


def _assert_one_signed_adapter(store_dir: Path, keyring: Keyring, kafka, outdir: Path) -> None:
    store = AdapterStore(open_objects(store_dir.as_uri(), None))
    assert store.versions("dist") == ["1"]
    manifest, _ = store.manifest("dist", "1", keyring)  # the signature verifies
    assert manifest["metrics"]["world_size"] == 2 and manifest["hyperparameters"]["effective_batch_size"] == 3
    events = read_events(kafka, [Topic.ADAPTER_PUBLISHED], 2, timeout=5)
    assert [e.message.adapter_id for e in events] == ["dist@1"]
    fetched = store.fetch("dist", "1", outdir / "fetched", keyring)
    assert fetched.files.keys() >= {"adapter_model.safetensors", "adapter_config.json"}


def test_two_ranks_train_what_one_process_does_and_publish_one_signed_adapter(
        tiny_model: Path, pairs: Path, one_process: dict, tmp_path: Path, kafka) -> None:
    ensure_topics(kafka)
    store_dir, key, keyring = _store(tmp_path)
    stdout = _gang(_env(tiny_model, pairs, tmp_path / "out", kafka, store_dir, key), tmp_path / "stderr.log",
                   start_over=tmp_path / "out")
    events = [e for e in map(_progress, stdout.splitlines()) if e]
    start = next(e for e in events if e["event"] == "start")
    assert (start["world_size"], start["fsdp"]) == (2, True)
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 9))
    assert [e["loss"] for e in steps] == pytest.approx(one_process["losses"], abs=1e-5)
    assert all(len(e["rank_tokens_per_s"]) == 2 and min(e["rank_tokens_per_s"]) > 0 for e in steps)
    assert sum(e["event"] == "published" for e in events) == 1  # rank 0 only
    checkpoint = list_checkpoints(tmp_path / "out" / "checkpoints")[-1]
    assert sorted(p.name for p in (checkpoint / "shards").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    _assert_same_weights(load_file(str(tmp_path / "out" / "adapter" / "adapter_model.safetensors")),
                         one_process["weights"])
    _assert_one_signed_adapter(store_dir, keyring, kafka, tmp_path)


def test_a_rank_killed_mid_run_resumes_from_the_last_checkpoint(
        tiny_model: Path, pairs: Path, one_process: dict, tmp_path: Path, kafka) -> None:
    """As in the chart's indexed Job: rank 1 is SIGKILLed after the step-2 checkpoint, its peer's collectives break
    and the gang fails (exit 1: retry); a fresh gang on the same checkpoint folder resumes and ends where the
    uninterrupted run ends, publishing one adapter."""
    ensure_topics(kafka)
    store_dir, key, keyring = _store(tmp_path)
    env = _env(tiny_model, pairs, tmp_path / "out", kafka, store_dir, key)
    first = _launch(env, tmp_path / "first.log")
    killed = None
    try:
        for line in first.stdout:
            event = _progress(line)
            if killed is None and event and event["event"] == "checkpoint" and event["step"] == 2:
                killed = _worker_pid(first.pid, 1)
                os.kill(killed, signal.SIGKILL)  # rank 1 dies mid-run
            assert not (event and event["event"] == "done"), "the run ended before rank 1 was killed"
        assert first.wait(timeout=300) == 1, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert killed is not None
    assert AdapterStore(open_objects(store_dir.as_uri(), None)).versions("dist") == []  # nothing published yet

    stdout = _gang(env, tmp_path / "second.log")  # the replaced gang
    events = [e for e in map(_progress, stdout.splitlines()) if e]
    [resume] = [e for e in events if e["event"] == "resume"]
    assert 2 <= resume["step"] < 8
    assert [e["step"] for e in events if e["event"] == "step"] == list(range(resume["step"] + 1, 9))
    _assert_same_weights(load_file(str(tmp_path / "out" / "adapter" / "adapter_model.safetensors")),
                         one_process["weights"])
    _assert_one_signed_adapter(store_dir, keyring, kafka, tmp_path)


def test_rank_0_refusal_stops_every_rank_with_its_exit_code(tiny_model: Path, pairs: Path, tmp_path: Path) -> None:
    """Only rank 0 opens the store; its refusal (version 1 exists: exit 3, which the Job's podFailurePolicy turns
    into a failed Job instead of retries) must end every rank, and torchrun's launcher must keep the code."""
    from vispod.common.artifacts import ArtifactStore

    existing = tmp_path / "v1"
    existing.mkdir()
    (existing / "adapter_config.json").write_text("{}")
    ArtifactStore(tmp_path / "artifacts").put_dir(existing, "dist", "1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISPOD_")}
    env.update(VISPOD_TRAINER_BASE_MODEL=str(tiny_model), VISPOD_TRAINER_PAIRS_DIR=str(pairs),
               VISPOD_TRAINER_OUTPUT_DIR=str(tmp_path / "out"),
               VISPOD_TRAINER_ARTIFACT_ROOT=str(tmp_path / "artifacts"),
               VISPOD_TRAINER_ADAPTER_NAME="dist", VISPOD_TRAINER_ADAPTER_VERSION="1",
               VISPOD_TRAINER_SERVE_METRICS="false", OMP_NUM_THREADS="1")
    stderr = tmp_path / "stderr.log"
    proc = _launch(env, stderr)
    stdout, _ = proc.communicate(timeout=300)
    assert proc.returncode == 3, stderr.read_text()[-3000:]
    refusals = [line for line in stdout.splitlines()
                if "not publishable" in line and "dist@1 is already published" in line]
    assert len(refusals) == 2  # both ranks stopped on rank 0's refusal, before any training
    assert not any((_progress(line) or {}).get("event") == "step" for line in stdout.splitlines())
