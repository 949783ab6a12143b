"""GPU training throughput of the trainer's recipe on a Qwen3-VL-shaped, random-initialised ~0.5B model.

Self-contained (torch, transformers, peft only) so it runs on a bare lent GPU machine:
    python benchmarks/gpu_trainer.py            # ~0.5B, bf16, gradient checkpointing, LoRA r16 on q/k/v/o/gate/up/down
    python benchmarks/gpu_trainer.py --tiny     # a few-M-parameter version that checks the script on a CPU
Writes JSON to $OUT/gpu_trainer.json when OUT is set, and prints it. Well under 10 minutes on an H100.

Workload per sample (the paper's shape): 5 images of 448x448 (196 merged tokens each after 2x2 merging of 16-px
patches) + text up to SEQ tokens in all; loss on the text after the images; effective batch 32 by accumulation.

Model FLOPs utilisation:  MFU = 6 · N · tokens / step_time / peak_bf16_flops
  N = all parameters (language model incl. embeddings, vision tower and mergers, LoRA),
  tokens = sequence tokens (text + image tokens) per optimizer step.
  6·N·T is the usual dense-training estimate (2NT forward, 4NT backward). With frozen base weights the backward
  skips weight gradients (~4NT in all) while gradient checkpointing recomputes the forward (+2NT), so 6NT stays
  the right order. Attention FLOPs (~12·L·H·d·S² per sequence) are reported separately, not in MFU.
  Peak dense bf16: H100 SXM / H200 989 TFLOP/s, H100 PCIe 756 TFLOP/s (no sparsity).
Random weights: the numbers measure speed and memory only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

PEAK_BF16 = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}
LANGUAGE_TARGETS = r"(?:.*\.)?language_model\.(?:model\.)?layers\.\d+\.(?:self_attn|mlp)\.(?:q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"  # noqa: E501


def build_config(size: str):
    """"tiny" (checks scripts on a CPU), "0.5b", or "7b" (a Qwen2.5-7B-shaped language model: the issue's 7B class)."""
    from transformers import Qwen3VLConfig

    if size == "7b":
        text = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                    num_key_value_heads=4, head_dim=128, vocab_size=152064)
        vision = dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16,
                      deepstack_visual_indexes=[5, 11, 17])
        mrope = [24, 20, 20]
    elif size == "tiny":
        text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=16, vocab_size=1024)
        vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, deepstack_visual_indexes=[0])
        mrope = [4, 2, 2]
    elif size == "0.5b":  # Qwen2.5-0.5B-like language model + a 12-block vision tower: ~0.55B parameters
        text = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                    num_key_value_heads=2, head_dim=64, vocab_size=151936)
        vision = dict(depth=12, hidden_size=768, intermediate_size=3072, num_heads=12,
                      deepstack_visual_indexes=[3, 7, 11])
        mrope = [8, 12, 12]
    else:
        raise ValueError(f"unknown size {size!r}")
    return Qwen3VLConfig(
        text_config={**text, "max_position_embeddings": 32768, "tie_word_embeddings": True,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope}},
        vision_config={**vision, "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
                       "out_hidden_size": text["hidden_size"], "num_position_embeddings": 2304},
        image_token_id=text["vocab_size"] - 3, video_token_id=text["vocab_size"] - 4,
        vision_start_token_id=text["vocab_size"] - 2, vision_end_token_id=text["vocab_size"] - 1,
        tie_word_embeddings=True)


def make_batch(config, micro: int, seq: int, images: int, side: int, device, dtype, gen: torch.Generator):
    """Random samples shaped like the trainer's: [vision_start, image_pad × n, vision_end] × images, then text."""
    grid = side // 16
    per_image = grid * grid // 4
    prompt = []
    for _ in range(images):
        prompt += [config.vision_start_token_id] + [config.image_token_id] * per_image + [config.vision_end_token_id]
    text_len = seq - len(prompt)
    if text_len < 16:
        raise ValueError("seq too short for the images")
    vocab = config.text_config.vocab_size - 8
    ids = torch.cat([torch.tensor(prompt).repeat(micro, 1), torch.randint(0, vocab, (micro, text_len), generator=gen)],
                    dim=1)
    labels = ids.clone()
    labels[:, :len(prompt) + 32] = -100  # images and instructions masked, like the trainer
    patch_dim = 3 * 2 * 16 * 16
    pixels = torch.randn(micro * images * grid * grid, patch_dim, generator=gen)
    mm = (ids == config.image_token_id).int()
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "pixel_values": pixels.to(device, dtype), "mm_token_type_ids": mm.to(device),
            "image_grid_thw": torch.tensor([[1, grid, grid]] * (micro * images)).to(device)}


def peak_flops(device_name: str) -> float | None:
    for key in sorted(PEAK_BF16, key=len, reverse=True):
        if key in device_name:
            return PEAK_BF16[key]
    return None


def time_steps(step: Callable[[], float], steps: int, cuda: bool) -> tuple[list[float], list[float]]:
    """(seconds, loss) of `steps` optimizer steps after one warm-up step (allocator, kernels); peak memory counts
    from after the warm-up."""
    step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        losses.append(step())
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times, losses


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny model that runs on a CPU (checks the script)")
    ap.add_argument("--seq", type=int, default=None, help="tokens per sample (default 2048; tiny 256)")
    ap.add_argument("--micro", type=int, default=None, help="samples per forward (default 4; tiny 2)")
    ap.add_argument("--batch", type=int, default=32, help="effective batch (accumulation)")
    ap.add_argument("--steps", type=int, default=None, help="timed optimizer steps (default 6; tiny 2)")
    ap.add_argument("--no-checkpointing", action="store_true")
    args = ap.parse_args()
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3VLForConditionalGeneration

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    seq = args.seq or (256 if args.tiny else 2048)
    micro = args.micro or (2 if args.tiny else 4)
    steps = args.steps or (2 if args.tiny else 6)
    side = 64 if args.tiny else 448
    batch = args.batch if not args.tiny else 4
    accum = max(1, batch // micro)
    t_start = time.perf_counter()
    torch.manual_seed(0)
    config = build_config("tiny" if args.tiny else "0.5b")
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration(config).to(dtype)
    model.config.use_cache = False
    checkpointing = cuda and not args.no_checkpointing
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    n_lm = sum(p.numel() for n, p in model.named_parameters() if ".visual." not in n)
    n_vis = sum(p.numel() for n, p in model.named_parameters() if ".visual." in n)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=LANGUAGE_TARGETS,
                                             task_type="CAUSAL_LM"))
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    emb = model.get_input_embeddings()

    def neftune(module, _inp, out):  # NEFTune alpha 5, as the trainer
        if module.training:
            scale = 5.0 / math.sqrt(out.size(-2) * out.size(-1))
            return out + torch.empty_like(out).uniform_(-scale, scale)
        return out

    emb.register_forward_hook(neftune)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=4e-6, fused=cuda)
    gen = torch.Generator().manual_seed(0)
    batches = [make_batch(config, micro, seq, 5, side, device, dtype, gen) for _ in range(min(accum, 4))]
    model.train()

    def step() -> float:
        total = 0.0
        for i in range(accum):
            loss = model(**batches[i % len(batches)]).loss / accum
            loss.backward()
            total += loss.detach()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(total)

    times, losses = time_steps(step, steps, cuda)
    step_s = sorted(times)[len(times) // 2]
    tokens_per_step = accum * micro * seq
    n_total = n_lm + n_vis + n_lora
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    peak = peak_flops(name) if cuda else None
    tc = config.text_config
    attn_flops = 12 * tc.num_hidden_layers * tc.num_attention_heads * tc.head_dim * seq * seq * accum * micro
    doc = {
        "benchmark": "gpu_trainer", "device": name, "random_weights": True, "tiny": args.tiny,
        "dtype": str(dtype).replace("torch.", ""), "gradient_checkpointing": checkpointing,
        "params": {"language_model": n_lm, "vision": n_vis, "lora_trainable": n_lora, "total": n_total},
        "workload": {"seq_tokens": seq, "images_per_sample": 5, "image_side": side, "micro_batch": micro,
                     "grad_accum": accum, "effective_batch": accum * micro, "timed_steps": steps},
        "step_seconds_median": round(step_s, 4), "step_seconds_all": [round(t, 4) for t in times],
        "samples_per_s": round(accum * micro / step_s, 3), "tokens_per_s": round(tokens_per_step / step_s, 1),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None,
        "model_tflops_per_s": round(6 * n_total * tokens_per_step / step_s / 1e12, 2),
        "attention_tflops_per_s_extra": round(attn_flops / step_s / 1e12, 2),
        "peak_bf16_tflops": peak / 1e12 if peak else None,
        "mfu": round(6 * n_total * tokens_per_step / step_s / peak, 4) if peak else None,
        "mfu_formula": "6 * params_total * tokens_per_step / step_seconds / peak_bf16_flops",
        "losses": [round(x, 4) for x in losses], "wall_seconds": round(time.perf_counter() - t_start, 1),
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).mkdir(parents=True, exist_ok=True)
        (Path(os.environ["OUT"]) / "gpu_trainer.json").write_text(text)
    return doc


if __name__ == "__main__":
    main()
