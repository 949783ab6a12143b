"""The trainer's multi-GPU path on a lent GPU: FSDP2 (vispod.trainer.distributed.shard) or QLoRA, on a 7B-class
Qwen3-VL built from a config with random weights; tokens/s and MFU to bench-results/trainer-gpu.json (and $OUT).

Prepared for the `device` tool's one-GPU machine (nothing is downloaded; needs torch, transformers, peft, and
bitsandbytes for --qlora). Run from the repository root:
    PYTHONPATH=services/trainer/src torchrun --standalone --nproc-per-node 1 benchmarks/gpu_trainer_distributed.py
        --fsdp                      # FSDP2 on 1 rank: the sharded code path, bf16 compute, fp32 reduce
    PYTHONPATH=services/trainer/src python benchmarks/gpu_trainer_distributed.py --qlora   # NF4 base, one GPU
    ... --size tiny                 # a few-M-parameter model that checks the script (CPU: gloo)
Two ranks on one GPU: NCCL refuses two ranks on one device, so FSDP with 2 processes needs 2 GPUs
(--nproc-per-node 2); the script says so and stops rather than measuring gloo on a GPU.

The step is the trainer's: LoRA r16/alpha32/dropout 0.05 on q/k/v/o/gate/up/down of the language model only
(vispod.trainer.lora.apply_lora), NEFTune alpha 5, loss summed over the step's label tokens, gradient clipping 1.0,
AdamW, gradient checkpointing; 5 images of 448 px + text per sample (benchmarks/gpu_trainer.make_batch).

MFU, two counts (both reported; state which when quoting):
  mfu_lora = 4 · N · tokens / step_s / peak: LoRA's model FLOPs (forward 2N + backward through activations 2N; the
             frozen base gets no weight gradients; recomputation by checkpointing not counted);
  mfu_6n   = 6 · N · tokens / step_s / peak: the dense-training count most published MFU figures use.
  N = all parameters (language model, vision tower, LoRA). Attention FLOPs are reported apart, not in MFU.
Random weights: speed and memory only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_trainer import build_config, make_batch, peak_flops, time_steps

from vispod.trainer.distributed import Dist, shard
from vispod.trainer.lora import NEFTune, apply_lora, four_bit_config, trainable_parameters

PAPER_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_model(config, device: torch.device, dtype: torch.dtype, qlora: bool, checkpointing: bool):
    from transformers import Qwen3VLForConditionalGeneration

    if not qlora:
        # Sharded: built on the CPU, fully_shard moves each unit's shard to the GPU (as the trainer loads a base).
        with torch.device("cpu" if dist_active() else device):
            model = Qwen3VLForConditionalGeneration(config).to(dtype)
    else:  # random weights go through the same quantising load the trainer uses (from a saved folder)
        import tempfile

        from peft import prepare_model_for_kbit_training
        from transformers import AutoModelForImageTextToText

        folder = Path(tempfile.mkdtemp(prefix="qlora-base-"))
        with torch.device(device):
            Qwen3VLForConditionalGeneration(config).to(dtype).save_pretrained(folder)
        torch.cuda.empty_cache()
        model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype, device_map={"": device.index or 0},
                                                            quantization_config=four_bit_config(dtype))
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    if checkpointing and not qlora:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def dist_active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="7b", choices=["tiny", "0.5b", "7b"])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--fsdp", action="store_true", help="FSDP2 over the torchrun ranks (1 GPU: 1 rank)")
    mode.add_argument("--qlora", action="store_true", help="4-bit NF4 base on one GPU (bitsandbytes)")
    ap.add_argument("--seq", type=int, default=None, help="tokens per sample (default 4096; tiny 256)")
    ap.add_argument("--micro", type=int, default=None, help="samples per forward (default 2; tiny 1)")
    ap.add_argument("--batch", type=int, default=32, help="effective batch over all ranks (paper: 32)")
    ap.add_argument("--steps", type=int, default=None, help="timed optimizer steps (default 3; tiny 2)")
    args = ap.parse_args()
    tiny = args.size == "tiny"
    d = Dist.from_env()
    cuda = torch.cuda.is_available()
    if args.fsdp and not d.launched:
        raise SystemExit("--fsdp runs under torchrun: torchrun --standalone --nproc-per-node 1 " + __file__)
    if args.qlora and (not cuda or d.world_size > 1):
        raise SystemExit("--qlora is the one-GPU path: one process on a CUDA device")
    if cuda and d.world_size > torch.cuda.device_count():
        raise SystemExit(f"{d.world_size} ranks but {torch.cuda.device_count()} GPU(s): NCCL needs one GPU per rank")
    device = torch.device("cuda", d.local_rank) if cuda else torch.device("cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    d.init(device, 1800)
    seq = args.seq or (256 if tiny else 4096)
    micro = args.micro or (1 if tiny else 2)
    steps = args.steps or (2 if tiny else 3)
    side = 64 if tiny else 448
    batch = 4 if tiny else args.batch
    accum = max(1, batch // (micro * d.world_size))  # micro-batches per rank per step
    checkpointing = cuda
    t_start = time.perf_counter()
    torch.manual_seed(0)
    config = build_config(args.size)
    model = build_model(config, device, dtype, args.qlora, checkpointing)
    n_lm = sum(p.numel() for n, p in model.named_parameters() if ".visual." not in n)
    n_vis = sum(p.numel() for n, p in model.named_parameters() if ".visual." in n)
    model = apply_lora(model, r=16, alpha=32, dropout=0.05, target_modules=PAPER_TARGETS)
    n_lora = sum(p.numel() for _, p in trainable_parameters(model))
    if args.fsdp:
        shard(model, d, text_only=False, param_dtype=dtype if cuda else None)
    NEFTune(model.get_input_embeddings(), 5.0)
    params = [p for _, p in trainable_parameters(model)]
    opt = torch.optim.AdamW(params, lr=4e-6, fused=cuda and not args.fsdp)
    gen = torch.Generator().manual_seed(d.rank)
    batches = [make_batch(config, micro, seq, 5, side, device, dtype, gen) for _ in range(min(accum, 2))]
    model.train()

    def step() -> float:
        items = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches) * accum / len(batches) * d.world_size
        total = 0.0
        for i in range(accum):
            loss = model(**batches[i % len(batches)], num_items_in_batch=int(items)).loss
            (loss * d.world_size if args.fsdp else loss).backward()  # FSDP averages over ranks; the trainer sums
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return total

    times, losses = time_steps(step, steps, cuda)
    step_s = sorted(times)[len(times) // 2]
    tokens = accum * micro * seq * d.world_size  # the job's tokens per optimizer step
    if args.qlora:  # parameters as the config has them (4-bit packing hides the count)
        from transformers import Qwen3VLForConditionalGeneration

        with torch.device("meta"):
            n_lm = sum(p.numel() for n, p in Qwen3VLForConditionalGeneration(config).named_parameters()
                       if ".visual." not in n)
    n_total = n_lm + n_vis + n_lora
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    peak = peak_flops(name) if cuda else None
    peak_all = peak * d.world_size if peak else None
    tc = config.text_config
    attn = 12 * tc.num_hidden_layers * tc.num_attention_heads * tc.head_dim * seq * seq * accum * micro * d.world_size
    doc = {
        "benchmark": "trainer-gpu", "device": name, "gpus": d.world_size if cuda else 0,
        "path": "qlora-nf4" if args.qlora else f"fsdp2-{d.world_size}-rank", "random_weights": True,
        "size": args.size, "dtype": str(dtype).replace("torch.", ""), "gradient_checkpointing": checkpointing,
        "params": {"language_model": n_lm, "vision": n_vis, "lora_trainable": n_lora, "total": n_total},
        "workload": {"seq_tokens": seq, "images_per_sample": 5, "image_side": side, "micro_batch": micro,
                     "grad_accum_per_rank": accum, "effective_batch": accum * micro * d.world_size,
                     "timed_steps": steps},
        "step_seconds_median": round(step_s, 4), "step_seconds_all": [round(t, 4) for t in times],
        "tokens_per_s": round(tokens / step_s, 1),
        "tokens_per_s_per_gpu": round(tokens / step_s / max(1, d.world_size), 1),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if cuda else None,
        "peak_bf16_tflops_per_gpu": peak / 1e12 if peak else None,
        "mfu_lora": round(4 * n_total * tokens / step_s / peak_all, 4) if peak_all else None,
        "mfu_6n": round(6 * n_total * tokens / step_s / peak_all, 4) if peak_all else None,
        "attention_tflops_per_s_extra": round(attn / step_s / 1e12, 2),
        "target": "MFU >= 0.35 for the LoRA step on a 7B-class config (issue #30); compare mfu_lora",
        "losses": [round(x, 4) for x in losses], "wall_seconds": round(time.perf_counter() - t_start, 1),
    }
    if d.is_main:
        text = json.dumps(doc, indent=2)
        print(text)
        for folder in [Path("bench-results"), *([Path(os.environ["OUT"])] if os.environ.get("OUT") else [])]:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "trainer-gpu.json").write_text(text)
    d.close()
    return doc


if __name__ == "__main__":
    main()
