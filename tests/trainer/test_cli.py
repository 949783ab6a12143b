"""The Job's entry point as the Job runs it: env settings, JSON progress lines, scrapeable metrics, exit codes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from vispod.devkit.testing.sample_pairs import write_sample_pairs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISPOD_")}
    env.update(values)
    return env


def test_job_entry_point_trains_reports_and_serves_metrics(tiny_model: Path, tmp_path: Path) -> None:
    pairs = write_sample_pairs(tmp_path / "pairs", n=3)
    port = _free_port()
    env = _env(VISPOD_TRAINER_PAIRS_DIR=str(pairs), VISPOD_TRAINER_BASE_MODEL=str(tiny_model),
               VISPOD_TRAINER_EFFECTIVE_BATCH_SIZE="2", VISPOD_TRAINER_MAX_STEPS="2", VISPOD_TRAINER_TORCH_THREADS="1",
               VISPOD_TRAINER_METRICS_PORT=str(port), VISPOD_TRAINER_METRICS_LINGER_S="20",
               VISPOD_TRAINER_CHECKPOINT_EVERY_STEPS="1")
    proc = subprocess.Popen([sys.executable, "-m", "vispod.trainer", "--out", str(tmp_path / "out"), "--no-publish",
                             "--lr", "0.01"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events: list[dict] = []
    try:
        for line in proc.stdout:
            doc = json.loads(line)  # every stdout line is JSON: progress events and structured logs
            events.append(doc)
            if doc.get("event") == "done":
                break
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        proc.terminate()  # SIGTERM ends the linger at once
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    steps = [e for e in events if e.get("event") == "step"]
    assert [e["step"] for e in steps] == [1, 2] and all(e["samples_per_s"] > 0 for e in steps)
    assert any(e.get("event") == "eval" for e in events)
    assert any("RANDOM weights" in e.get("msg", "") for e in events)
    metrics = {line.split(" ")[0]: float(line.split(" ")[1]) for line in body.splitlines()
               if line.startswith("vispod_trainer_") and " " in line}
    assert metrics["vispod_trainer_steps_total"] == 2
    assert metrics["vispod_trainer_loss"] == steps[-1]["loss"]
    assert metrics["vispod_trainer_samples_per_second"] > 0
    assert metrics["vispod_trainer_checkpoints_total"] == 2  # step 1, and the final one
    assert "vispod_trainer_eval_loss" in metrics
    assert 'vispod_trainer_skipped_samples_total{reason="too_long"}' in metrics
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()


def test_bad_dataset_exits_2_naming_the_line(tiny_model: Path, tmp_path: Path) -> None:
    pairs = write_sample_pairs(tmp_path / "pairs", n=2)
    (pairs / "images" / "p0001_3.png").unlink()
    out = subprocess.run([sys.executable, "-m", "vispod.trainer", "--pairs", str(pairs),
                          "--base", str(tiny_model), "--no-metrics-server"], env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2
    assert "pairs.jsonl:2: image 'images/p0001_3.png' is missing" in out.stdout


def test_vispod_train_is_registered() -> None:
    from vispod.common.cli import build_parser

    args = build_parser().parse_args(["train", "--pairs", "p", "--base", "b", "--out", "o", "--name", "n",
                                      "--version", "3", "--resume"])
    from vispod.trainer.cli import settings_from_args

    s = settings_from_args(args)
    assert (str(s.pairs_dir), str(s.base_model), str(s.output_dir), s.adapter_name, s.adapter_version, s.resume) == (
        "p", "b", "o", "n", "3", True)
