"""The trainer on 1 process and on 2 (torchrun + FSDP2 over gloo) on CPU: throughput per process, and how far apart
the two adapters end up (same data, seed and recipe; LoRA dropout and NEFTune on).

Both runs go through the Job's entry points (`python -m vispod.trainer`, `python -m vispod.trainer.launch`), one
torch thread per process. Throughput is the median over the steps after the first (warm-up); "per rank" is each
rank's own tokens over its own step time, as the trainer reports it (vispod_trainer_rank_tokens_per_second).
Writes bench-results/trainer-distributed.json. Random weights: the numbers measure the machinery, not a model; on
this shared 2-core machine two ranks also compete for the cores with everything else running.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAIRS = 18  # 16 to train on, 2 held out
STEPS = 8
BATCH = 4
RECIPE = {"EFFECTIVE_BATCH_SIZE": BATCH, "MICRO_BATCH_SIZE": 1, "MAX_STEPS": STEPS, "LEARNING_RATE": 1e-2,
          "EVAL_FRACTION": 0.1, "CHECKPOINT_EVERY_STEPS": 0, "TORCH_THREADS": 1, "SEED": 7, "SERVE_METRICS": "false",
          "PUBLISH": "false", "METRICS_LINGER_S": 0}


def _run(cmd: list[str], model: Path, pairs: Path, out: Path) -> tuple[list[dict], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISPOD_")}
    env.update({f"VISPOD_TRAINER_{k}": str(v) for k, v in RECIPE.items()})
    env.update(VISPOD_TRAINER_BASE_MODEL=str(model), VISPOD_TRAINER_PAIRS_DIR=str(pairs),
               VISPOD_TRAINER_OUTPUT_DIR=str(out), OMP_NUM_THREADS="1")
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{cmd} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    events = []
    for line in proc.stdout.splitlines():
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(doc, dict) and doc.get("event") == "step":
            events.append(doc)
    return events, wall


def _summary(steps: list[dict], wall: float) -> dict:
    timed = steps[1:]
    ranks = len(timed[0]["rank_tokens_per_s"])
    return {"processes": ranks, "steps": len(steps), "whole_run_wall_seconds": round(wall, 2),
            "tokens_per_s": round(statistics.median(s["tokens_per_s"] for s in timed), 1),
            "tokens_per_s_per_rank": [round(statistics.median(s["rank_tokens_per_s"][r] for s in timed), 1)
                                      for r in range(ranks)],
            "step_seconds_median": round(statistics.median(s["seconds"] for s in timed), 4),
            "losses": [s["loss"] for s in steps]}


def main() -> dict:
    import torch
    from safetensors.torch import load_file

    from vispod.devkit.testing.sample_pairs import write_sample_pairs
    from vispod.devkit.testing.tiny_vlm import build_tiny_qwen3_vl

    tmp = Path(tempfile.mkdtemp(prefix="bench-trainer-dist-"))
    model = build_tiny_qwen3_vl(tmp / "model")
    pairs = write_sample_pairs(tmp / "pairs", n=PAIRS)
    one = _run([sys.executable, "-m", "vispod.trainer"], model, pairs, tmp / "one")
    two = _run([sys.executable, "-m", "vispod.trainer.launch", "--standalone", "--nproc-per-node", "2",
                "-m", "vispod.trainer"], model, pairs, tmp / "two")
    a = load_file(str(tmp / "one" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp / "two" / "adapter" / "adapter_model.safetensors"))
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    s1, s2 = _summary(*one), _summary(*two)
    doc = {
        "benchmark": "trainer-distributed", "device": "cpu", "backend": "gloo", "random_weights": True,
        "model": "tiny random Qwen3VLForConditionalGeneration (vispod.devkit.testing.tiny_vlm, hidden 32, 2 layers)",
        "workload": {"train_pairs": PAIRS - 2, "images_per_pair": 5, "effective_batch": BATCH, "micro_batch": 1,
                     "steps": STEPS, "torch_threads_per_process": 1, "cpu_cores": os.cpu_count(),
                     "torch": torch.__version__},
        "notes": "tokens_per_s: the job's (all ranks) tokens per second of wall time per step; tokens_per_s_per_rank: "
                 "each rank's tokens over its own compute time. On 2 shared cores two ranks cannot beat one: "
                 "this measures the distributed machinery (gloo collectives, FSDP all-gathers of a tiny model), "
                 "not a speed-up.",
        "one_process": s1, "two_processes_fsdp": s2,
        "adapter_max_abs_difference": diff, "target_max_abs_difference": 1e-4, "meets_target": diff < 1e-4,
        "max_loss_difference": max(abs(x - y) for x, y in zip(s1["losses"], s2["losses"], strict=True)),
    }
    text = json.dumps(doc, indent=2)
    path = Path("bench-results") / "trainer-distributed.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    print(text)
    return doc


if __name__ == "__main__":
    main()
