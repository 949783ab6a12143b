"""Trainer overhead on CPU: vispod's LoRA loop vs a bare peft loop on the same tiny random Qwen3-VL and data.

Each side runs in its own subprocess (so peak RSS is its own), alternating, several rounds; the best round of each
counts (the machine is shared: the best is the least disturbed). Throughput excludes the first (warm-up) step.
Writes bench-results/trainer.json. Random weights: the numbers measure the machinery, not a model.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = 10
BATCH = 4
ROUNDS = 3
PAIRS = 8


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_vispod(model: Path, pairs: Path, out: Path) -> dict:
    from vispod.trainer.dataset import dataset_hash, load_pairs
    from vispod.trainer.loop import LoraTrainer
    from vispod.trainer.settings import TrainerSettings
    from vispod.trainer.telemetry import Progress

    class Quiet(Progress):
        def __init__(self) -> None:
            self.steps: list[dict] = []

        def emit(self, event: str, **fields) -> None:
            if event == "step":
                self.steps.append(fields)

    settings = TrainerSettings(base_model=model, pairs_dir=pairs, output_dir=out, effective_batch_size=BATCH,
                               micro_batch_size=1, max_steps=STEPS, eval_fraction=0, checkpoint_every_steps=0,
                               torch_threads=1, device="cpu", learning_rate=1e-3, warmup_ratio=0)
    loaded = load_pairs(pairs)
    progress = Quiet()
    trainer = LoraTrainer(settings, loaded, dataset_sha256=dataset_hash(pairs, loaded), progress=progress)
    trainer.train()
    timed = progress.steps[1:]
    seconds = sum(s["seconds"] for s in timed)
    return {"samples_per_s": sum(s["samples"] for s in timed) / seconds, "seconds": seconds,
            "best_step_samples_per_s": max(s["samples"] / s["seconds"] for s in timed),
            "final_loss": progress.steps[-1]["loss"]}


def run_bare(model_dir: Path, pairs: Path, out: Path) -> dict:
    """What one writes without the trainer: chat template, processor, labels = inputs, AdamW, accumulate."""
    import torch
    from peft import LoraConfig, get_peft_model
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    torch.set_num_threads(1)
    torch.manual_seed(0)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    rows = [json.loads(x) for x in (pairs / "pairs.jsonl").read_text().splitlines()]
    model.train()
    times, losses = [], []
    for step in range(STEPS):
        t0 = time.perf_counter()
        total = 0.0
        for k in range(BATCH):
            row = rows[(step * BATCH + k) % len(rows)]
            human, gpt = row["conversations"][0]["value"], row["conversations"][1]["value"]
            content = [{"type": "image"}] * len(row["image"]) + [{"type": "text", "text": human.split("\n", 1)[1]}]
            msgs = [{"role": "user", "content": content},
                    {"role": "assistant", "content": [{"type": "text", "text": gpt}]}]
            text = processor.apply_chat_template(msgs, tokenize=False)
            images = [Image.open(pairs / p).convert("RGB") for p in row["image"]]
            batch = processor(text=[text], images=images, return_tensors="pt")
            loss = model(**batch, labels=batch["input_ids"]).loss / BATCH
            loss.backward()
            total += float(loss)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
        losses.append(total)
    seconds = sum(times[1:])
    return {"samples_per_s": (STEPS - 1) * BATCH / seconds, "seconds": seconds,
            "best_step_samples_per_s": BATCH / min(times[1:]), "final_loss": losses[-1]}


def child(mode: str, model: str, pairs: str, out: str) -> None:
    fn = run_vispod if mode == "vispod" else run_bare
    result = fn(Path(model), Path(pairs), Path(out))
    result["peak_rss_mib"] = _peak_rss_mib()
    print("RESULT " + json.dumps(result))


def main() -> dict:
    from vispod.devkit.testing.sample_pairs import write_sample_pairs
    from vispod.devkit.testing.tiny_vlm import build_tiny_qwen3_vl

    tmp = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    model = build_tiny_qwen3_vl(tmp / "model")
    pairs = write_sample_pairs(tmp / "pairs", n=PAIRS)
    runs: dict[str, list[dict]] = {"vispod": [], "bare": []}
    for i in range(ROUNDS):
        for mode in ("bare", "vispod") if i % 2 else ("vispod", "bare"):
            proc = subprocess.run([sys.executable, __file__, "--child", mode, str(model), str(pairs),
                                   str(tmp / f"out-{mode}-{i}")], capture_output=True, text=True, timeout=900)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                raise RuntimeError(f"{mode} run failed:\n{proc.stderr[-3000:]}")
            runs[mode].append(json.loads(line[-1][len("RESULT "):]))
    # The least disturbed measurement of each: its fastest step over all rounds (a shared machine's load only
    # ever slows steps down), and the best whole-run throughput for reference.
    best_step = {m: max(x["best_step_samples_per_s"] for x in r) for m, r in runs.items()}
    best = {m: max(r, key=lambda x: x["samples_per_s"]) for m, r in runs.items()}
    rss = {m: min(x["peak_rss_mib"] for x in r) for m, r in runs.items()}
    ratio = best_step["bare"] / best_step["vispod"]
    run_ratio = best["bare"]["samples_per_s"] / best["vispod"]["samples_per_s"]
    doc = {
        "benchmark": "trainer", "device": "cpu", "random_weights": True,
        "model": "tiny random Qwen3VLForConditionalGeneration (vispod.devkit.testing.tiny_vlm, hidden 32, 2 layers)",
        "workload": {"pairs": PAIRS, "images_per_pair": 5, "steps": STEPS, "effective_batch": BATCH,
                     "micro_batch": 1, "torch_threads": 1, "rounds": ROUNDS, "timed_steps": STEPS - 1},
        "vispod_samples_per_s": round(best_step["vispod"], 3),
        "bare_peft_samples_per_s": round(best_step["bare"], 3),
        "time_ratio_vispod_over_bare": round(ratio, 4),
        "whole_run_samples_per_s": {"vispod": round(best["vispod"]["samples_per_s"], 3),
                                    "bare_peft": round(best["bare"]["samples_per_s"], 3)},
        "whole_run_time_ratio": round(run_ratio, 4),
        "target_time_ratio_max": 1.05, "meets_target": ratio <= 1.05,
        "vispod_peak_rss_mib": round(rss["vispod"], 1), "bare_peft_peak_rss_mib": round(rss["bare"], 1),
        "peak_rss_ratio": round(rss["vispod"] / rss["bare"], 4),
        "all_rounds": runs,
        "notes": "time ratio = bare samples/s / vispod samples/s (>1: vispod slower), from each side's fastest step "
                 "over all rounds; whole-run numbers vary by 2x between identical runs on this shared 2-core "
                 "machine. vispod also masks labels, checks the data, prefetches, clips gradients, adds NEFTune "
                 "noise, logs and exports metrics; the bare loop learns on every token.",
    }
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "trainer.json").write_text(json.dumps(doc, indent=2))
    print(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:6])
    else:
        main()
