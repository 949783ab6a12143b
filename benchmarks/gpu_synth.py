"""gpu-synth: images/s of an SD-1.5-sized, random-initialised text-to-image stack on one CUDA GPU.

No weights, no network: builds a UNet with the Stable Diffusion 1.5 configuration (~860M parameters), the
SD VAE and a CLIP ViT-L-sized text encoder with random weights directly on the GPU (vispod.synth.tiny.SD15, the
builder of the tiny test pipeline), then times, per batch size (default 1 and 4) at 512×512:
- unet_step: one denoising step with classifier-free guidance (the UNet sees 2×batch latents);
- end_to_end: text encoding + `steps` DDIM steps with guidance + VAE decode → images/s.
Random weights draw noise; the timings are those of the real architecture. Not run in CI.

    python benchmarks/gpu_synth.py [--steps 30] [--size 512] [--batches 1,4] [--dtype float16] [--out PATH]

Writes JSON to --out (default: $OUT/gpu_synth.json when OUT is set, else bench-results/gpu_synth.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batches", default="1,4")
    p.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default="float16")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--device", default="cuda", help="cpu only to smoke-test the script (tiny --size)")
    default_out = (
        Path(os.environ["OUT"]) / "gpu_synth.json" if os.environ.get("OUT") else Path("bench-results/gpu_synth.json")
    )
    p.add_argument("--out", type=Path, default=default_out)
    return p.parse_args()


def main() -> int:
    args = parse_args()
    import torch

    from vispod.synth.tiny import SD15, random_sd_modules, sd15_scheduler

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_synth: no CUDA device; this benchmark is for a GPU machine", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    shape = replace(SD15, image_side=args.size)
    with device:
        text, vae, unet = random_sd_modules(shape)
    unet, vae, text = (m.to(dtype).eval() for m in (unet, vae, text))
    build_s = time.perf_counter() - t0
    scheduler = sd15_scheduler()
    latent = shape.latent_side

    def sync_time(fn) -> float:  # type: ignore[no-untyped-def]
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    results = []
    for batch in [int(b) for b in args.batches.split(",")]:
        ids = torch.randint(0, 49408, (2 * batch, 77), device=device)  # cond + uncond prompts

        @torch.inference_mode()
        def unet_step(batch: int = batch) -> None:
            x = torch.randn(2 * batch, 4, latent, latent, device=device, dtype=dtype)
            ctx = torch.randn(2 * batch, 77, 768, device=device, dtype=dtype)
            unet(x, 500, encoder_hidden_states=ctx)

        @torch.inference_mode()
        def end_to_end(batch: int = batch, ids: torch.Tensor = ids) -> None:
            ctx = text(ids)[0]
            scheduler.set_timesteps(args.steps)
            gen = torch.Generator(device="cpu").manual_seed(0)
            x = torch.randn(batch, 4, latent, latent, generator=gen).to(device, dtype)
            for t in scheduler.timesteps:
                noise = unet(torch.cat([x, x]), t, encoder_hidden_states=ctx).sample
                uncond, cond = noise.chunk(2)
                x = scheduler.step(uncond + args.guidance * (cond - uncond), t, x).prev_sample
            images = vae.decode(x / 0.18215).sample
            images.float().clamp(-1, 1).cpu()

        sync_time(unet_step)  # warm-up: kernels, allocator, cuDNN autotune
        sync_time(end_to_end)
        steps_s = [sync_time(unet_step) for _ in range(max(5, args.repeats))]
        runs_s = [sync_time(end_to_end) for _ in range(args.repeats)]
        e2e = statistics.median(runs_s)
        results.append(
            {
                "batch": batch,
                "unet_step_ms_median": round(statistics.median(steps_s) * 1000, 2),
                "end_to_end_seconds_median": round(e2e, 3),
                "images_per_second": round(batch / e2e, 3),
                "runs_seconds": [round(s, 3) for s in runs_s],
            }
        )
        print(json.dumps(results[-1]), flush=True)

    report = {
        "benchmark": "gpu_synth",
        "random_weights": True,
        "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
        "dtype": args.dtype,
        "size": args.size,
        "steps": args.steps,
        "guidance": args.guidance,
        "unet_parameters_m": round(sum(p.numel() for p in unet.parameters()) / 1e6, 1),
        "build_seconds": round(build_s, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
