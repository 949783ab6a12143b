"""The dataset builder end to end with the tiny pipeline: local and bus modes, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TINY_SIZE, TINY_STEPS, synth_settings
from prometheus_client import REGISTRY

from vispod.common.settings import KafkaSettings
from vispod.dataset.build import BuildConfig, BuildConfigMismatch, BuildResult, SynthParams, build_dataset
from vispod.dataset.clients import KafkaSynthClient, LocalSynthClient, SynthesisError
from vispod.dataset.layout import sha256_bytes
from vispod.dataset.sporc_synthetic import make_episodes, write_jsonl_layout
from vispod.synth.engine import Synthesizer
from vispod.synth.service import build
from vispod.v1 import events_pb2

PARAMS = SynthParams(width=TINY_SIZE, height=TINY_SIZE, steps=TINY_STEPS, guidance=5.0)


@pytest.fixture(scope="module")
def local_client(tiny_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSynthClient]:
    client = LocalSynthClient(Synthesizer(synth_settings(tiny_pipeline, tmp_path_factory.mktemp("art"))))
    yield client
    client.close()


@pytest.fixture(scope="module")
def sporc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Malformed rows included: they must show up in the manifest, counted by reason.
    return write_jsonl_layout(tmp_path_factory.mktemp("sporc"), make_episodes(10, seed=5), malformed=True)


def _build(sporc: Path, out: Path, client, n: int = 3, seed: int = 1) -> BuildResult:  # type: ignore[no-untyped-def]
    return build_dataset(
        BuildConfig(sporc=sporc, out=out, n=n, seed=seed, synth=PARAMS, progress=False, inflight=2), client
    )


def _check_layout(out: Path, n: int) -> dict:
    lines = (out / "pairs.jsonl").read_text(encoding="utf-8").splitlines()
    pairs = [json.loads(line) for line in lines]
    assert len(pairs) == n and len({p["id"] for p in pairs}) == n
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_pairs"] == n and manifest["random_weights"] is True and "warning" in manifest
    assert manifest["pairs_sha256"] == sha256_bytes((out / "pairs.jsonl").read_bytes())
    for pair, entry in zip(pairs, manifest["pairs"], strict=True):
        assert set(pair) == {"id", "image", "conversations"}
        assert len(pair["image"]) == 5 and all(not Path(p).is_absolute() for p in pair["image"])
        human, gpt = pair["conversations"]
        assert human["from"] == "human" and human["value"].startswith("<image>" * 5 + "\n")
        assert gpt["from"] == "gpt" and gpt["value"].startswith("Speaker 1: ")
        assert (
            600
            <= len(gpt["value"].replace("Speaker 1:", "").replace("Speaker 2:", "").replace("Speaker 3:", "").split())
            <= 800
        )
        assert entry["id"] == pair["id"] and entry["text_sha256"] == sha256_bytes(gpt["value"].encode())
        assert [i["path"] for i in entry["images"]] == pair["image"]
        for image in entry["images"]:
            assert sha256_bytes((out / image["path"]).read_bytes()) == image["sha256"]
        assert [i["seed"] for i in entry["images"]] == [entry["seed"] + k for k in range(5)]
        assert len(entry["prompts"]) == 5 and entry["source"]["episode_id"] and entry["source"]["mp3url"]
    assert manifest["prompt_template_version"] and manifest["instruction_version"]
    assert manifest["source_report"]["malformed"] == {
        "episode_invalid_json": 1,
        "episode_missing_mp3url": 1,
        "turn_bad_speaker": 1,
        "turn_invalid_json": 1,
        "turn_missing_text": 2,
    }
    return manifest


def test_local_build_three_pairs_then_rerun_is_a_no_op(sporc: Path, tmp_path: Path, local_client) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "ds"
    first = _build(sporc, out, local_client)
    assert (first.pairs_total, first.pairs_synthesized, first.shortfall) == (3, 3, 0)
    manifest = _check_layout(out, 3)
    assert manifest["dataset_sha256"] == first.dataset_sha256 and manifest["build"]["mode"] == "local"
    before = (out / "pairs.jsonl").read_bytes()
    again = _build(sporc, out, local_client)
    assert (again.pairs_skipped, again.pairs_synthesized) == (3, 0)
    assert (out / "pairs.jsonl").read_bytes() == before and again.dataset_sha256 == first.dataset_sha256
    smaller = _build(sporc, out, local_client, n=2)  # a smaller --n keeps the finished pairs
    assert (smaller.pairs_total, smaller.pairs_synthesized, smaller.dataset_sha256) == (3, 0, first.dataset_sha256)
    # Same seed elsewhere: the same dataset. Another seed in the same folder: refused.
    assert _build(sporc, tmp_path / "twin", local_client).dataset_sha256 == first.dataset_sha256
    with pytest.raises(BuildConfigMismatch, match="seed"):
        _build(sporc, out, local_client, seed=2)


def _count(outcome: str) -> float:
    return REGISTRY.get_sample_value("vispod_synth_requests_total", {"source": "local", "outcome": outcome}) or 0.0


def test_the_local_client_refuses_and_counts_as_the_service_does(local_client) -> None:  # type: ignore[no-untyped-def]
    ok, invalid = _count("ok"), _count("invalid")
    good = events_pb2.SynthesisRequested(request_id="r1", prompts=["a red kite", "a green field"], width=TINY_SIZE,
                                         height=TINY_SIZE, steps=TINY_STEPS, seed=3)
    outcome = local_client.run([good])["r1"]
    assert len(outcome.images) == 2 and all(png.startswith(b"\x89PNG") for png in outcome.images)
    assert outcome.random_weights is True
    with pytest.raises(SynthesisError, match=r"request r2 refused: width: 36 is not a multiple of 8"):
        local_client.run([events_pb2.SynthesisRequested(request_id="r2", prompts=["x"], width=36, height=32)])
    assert (_count("ok"), _count("invalid")) == (ok + 1, invalid + 1)


def test_torn_line_and_orphan_record_are_repaired(sporc: Path, tmp_path: Path, local_client) -> None:  # type: ignore[no-untyped-def]
    reference = _build(sporc, tmp_path / "ref", local_client)
    out = tmp_path / "ds"
    _build(sporc, out, local_client)
    lines = (out / "pairs.jsonl").read_bytes().splitlines(keepends=True)
    # As if killed after pair 3's record but before its line, in the middle of appending it.
    (out / "pairs.jsonl").write_bytes(b"".join(lines[:2]) + lines[2][:17])
    (out / "manifest.json").unlink()
    result = _build(sporc, out, local_client)
    assert (result.pairs_skipped, result.pairs_recovered, result.pairs_synthesized) == (2, 1, 0)
    assert (out / "pairs.jsonl").read_bytes() == (tmp_path / "ref" / "pairs.jsonl").read_bytes()
    assert result.dataset_sha256 == reference.dataset_sha256


def test_resume_after_sigkill(sporc: Path, tmp_path: Path, tiny_pipeline: Path, local_client) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "vispod.common.cli",
        "dataset",
        "build",
        "--sporc",
        str(sporc),
        "--n",
        "6",
        "--out",
        str(out),
        "--seed",
        "1",
        "--model-path",
        str(tiny_pipeline),
        "--threads",
        "1",
        "--width",
        str(TINY_SIZE),
        "--height",
        str(TINY_SIZE),
        "--steps",
        str(TINY_STEPS),
        "--guidance",
        "5",
        "--inflight",
        "2",
        "--no-progress",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISPOD_")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pairs = out / "pairs.jsonl"
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if pairs.exists() and pairs.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"builder ended before the kill: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = pairs.read_bytes().count(b"\n")
    assert 2 <= done_before < 6 and not (out / "manifest.json").exists()

    resumed = build_dataset(
        BuildConfig(sporc=sporc, out=out, n=6, seed=1, synth=PARAMS, progress=False, inflight=2), local_client
    )
    assert resumed.pairs_skipped == done_before and resumed.pairs_total == 6
    assert resumed.pairs_synthesized + resumed.pairs_recovered == 6 - done_before
    _check_layout(out, 6)
    reference = build_dataset(
        BuildConfig(sporc=sporc, out=tmp_path / "ref", n=6, seed=1, synth=PARAMS, progress=False), local_client
    )
    assert pairs.read_bytes() == (tmp_path / "ref" / "pairs.jsonl").read_bytes()
    assert resumed.dataset_sha256 == reference.dataset_sha256
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        p.name for p in (tmp_path / "ref" / "images").iterdir()
    )


def test_build_through_the_bus_matches_the_local_build(  # type: ignore[no-untyped-def]
    sporc: Path, tmp_path: Path, tiny_pipeline: Path, kafka: KafkaSettings, local_client
) -> None:
    settings = synth_settings(tiny_pipeline, tmp_path / "artifacts", kafka)
    handle = build(settings).start()
    try:
        assert handle.consumers[0].wait_running(60)
        client = KafkaSynthClient(kafka, [tmp_path / "artifacts"], timeout_s=300)
        try:
            via_bus = _build(sporc, tmp_path / "bus", client)
            # A request the service refuses comes back as the dead letter's reason, not as a silent wait.
            bad = BuildConfig(sporc=sporc, out=tmp_path / "bad", n=1, synth=SynthParams(width=36), progress=False)
            with pytest.raises(SynthesisError, match=r"dead-lettered.*width: 36 is not a multiple of 8"):
                build_dataset(bad, client)
        finally:
            client.close()
    finally:
        handle.stop()
    manifest = _check_layout(tmp_path / "bus", 3)
    assert manifest["build"]["mode"] == "kafka" and via_bus.pairs_synthesized == 3
    local = _build(sporc, tmp_path / "local", local_client)
    assert via_bus.dataset_sha256 == local.dataset_sha256
    assert (tmp_path / "bus" / "pairs.jsonl").read_bytes() == (tmp_path / "local" / "pairs.jsonl").read_bytes()
