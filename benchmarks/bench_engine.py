"""Embedded inference benchmark → bench-results/engine.json (issue: llama.cpp speed for the offline models).

One run, side by side, on SmolLM2-135M-Instruct (real weights), the same prompt (the generator's own, rendered
with the model's chat template), greedy, the same max new tokens:
1. transformers: the GGUF de-quantised to float32, `generate` (the `local` backend's path);
2. bare llama-cpp-python in-process (`Llama.create_completion`, the engine's threads, its prompt cache reset
   before each run: the service computes every request's prompt);
3. vispod's `llamacpp` backend through the generator's gRPC service (Generate; one attempt, whole-transcript
   plan so the service's own scaffold adds nothing): completion tokens / wall time of the call;
   2 and 3 run interleaved, `--repeats` times each, and report medians (this machine's speed drifts by a third
   within minutes: run one after the other, the later one would be measured on a different machine);
4. concurrency 4 through the service (batched decoding: one forward pass for all sequences) vs one stream;
5. adapter swap with requests in flight: a LoRA (converted to GGUF once) loaded and the previous one retired
   while two requests stream; p50/p99 of the swap, every request must complete.

The service runs with repeat_penalty 1.0 and no_repeat_ngram 0 here so that it decodes exactly what bare llama.cpp
decodes.

Usage: python benchmarks/bench_engine.py [--max-new-tokens N] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from percentiles import pct

from vispod.common.embedded_models import resolve_gguf
from vispod.common.settings import ImageAccessSettings, KafkaSettings
from vispod.generator.backends.base import GenerationInput
from vispod.generator.prompting import build_prompt
from vispod.generator.request import normalise_speakers
from vispod.v1 import common_pb2, events_pb2, generator_pb2, generator_pb2_grpc

CAPTIONS = ["we drove to the beach and the waves were huge .", "the kids built a sand castle near the water .",
            "a dog ran across the park chasing a ball .", "grandma brought a birthday cake with candles .",
            "the sunset over the mountain ended the day ."]


def prompt_input(max_new_tokens: int) -> GenerationInput:
    prompt = build_prompt(speakers=normalise_speakers([]), num_images=5, target_words=800, language="en", style="",
                          captions=CAPTIONS, version="v1")
    return GenerationInput(system=prompt.system, user=prompt.user, max_new_tokens=max_new_tokens, temperature=0.0)


def bench_transformers(inp: GenerationInput) -> dict:
    from vispod.generator.backends.local import LocalBackend

    backend = LocalBackend(resolve_gguf("smollm2"), text_only=True, device="cpu")
    backend.generate_text(GenerationInput(system=inp.system, user=inp.user, max_new_tokens=8))  # warm-up
    started = time.perf_counter()
    _, stream = backend.generate_text(inp)
    seconds = time.perf_counter() - started
    return {"tok_s": stream.completion_tokens / seconds, "tokens": stream.completion_tokens,
            "load_s": backend.load_seconds}


class Bare:
    """llama-cpp-python in-process with the engine's threads (its default decodes on half the cores)."""

    def __init__(self, prompt_text: str, max_new_tokens: int) -> None:
        import llama_cpp

        started = time.perf_counter()
        threads = os.cpu_count() or 1
        self.llm = llama_cpp.Llama(str(resolve_gguf("smollm2")), n_ctx=4096, n_threads=threads,
                                   n_threads_batch=threads, verbose=False)
        self.load_s = time.perf_counter() - started
        self.prompt_text, self.max_new_tokens = prompt_text, max_new_tokens
        self.tokens = 0

    def run(self) -> float:
        # Llama keeps the last prompt's cache and would skip computing a repeated prompt; the service computes
        # every request's prompt, so each run here starts from an empty cache too (the same work).
        self.llm.reset()
        t = time.perf_counter()
        out = self.llm.create_completion(self.prompt_text, max_tokens=self.max_new_tokens, temperature=0.0, top_k=1)
        self.tokens = out["usage"]["completion_tokens"]
        return self.tokens / (time.perf_counter() - t)

    def close(self) -> None:
        self.llm.close()


class Service:
    def __init__(self, root: Path, max_new_tokens: int) -> None:
        from vispod.generator.service import build
        from vispod.generator.settings import GeneratorSettings

        settings = GeneratorSettings(
            backend="llamacpp", model_path=Path("smollm2"), max_new_tokens=max_new_tokens, temperature=0.0,
            max_attempts=1, concurrency=4, grpc_port=0, metrics_port=0, consume=False, plan="whole", repeat_penalty=1.0,
            no_repeat_ngram=0, prefill_first_label=False, validate_images_in_text_mode=False, grpc_max_workers=16,
            images=ImageAccessSettings(file_roots=[root]), adapter_state_dir=root / "state",
            adapter_cache_dir=root / "cache", kafka=KafkaSettings(bootstrap="127.0.0.1:1"))
        self.settings = settings
        self.handle = build(settings, with_publisher=False).start()  # consume=False: gRPC only
        self.app = self.handle.app  # the Generator
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.handle.grpc_port}")
        self.stub = generator_pb2_grpc.GeneratorServiceStub(self.channel)

    def generate(self, seed: int = 1, temperature: float | None = None) -> tuple[events_pb2.DialogueGenerated, float]:
        if temperature is not None:
            self.settings.temperature = temperature
        refs = [common_pb2.ImageRef(uri=f"https://photos.example.com/{i}.jpg", caption=c)
                for i, c in enumerate(CAPTIONS)]
        ev = events_pb2.ImageSetSubmitted(image_set_id=f"bench-{seed}", images=refs, seed=seed)
        started = time.perf_counter()
        result = self.stub.Generate(generator_pb2.GenerateRequest(image_set=ev), timeout=600).result
        return result, time.perf_counter() - started

    def close(self) -> None:
        self.channel.close()
        self.handle.stop()


def bench_side_by_side(bare: Bare, svc: Service, repeats: int) -> tuple[dict, dict]:
    """Bare and service runs interleaved (bare, service, bare, …): a machine that speeds up or slows down
    during the benchmark moves both alike. Medians of `repeats` runs each."""
    bare_runs, svc_runs, tokens = [], [], 0
    for _ in range(repeats):
        bare_runs.append(bare.run())
        result, seconds = svc.generate()
        tokens = result.usage.completion_tokens
        svc_runs.append(tokens / seconds)
    return ({"tok_s": statistics.median(bare_runs), "runs": bare_runs, "tokens": bare.tokens, "load_s": bare.load_s},
            {"tok_s": statistics.median(svc_runs), "runs": svc_runs, "tokens": tokens})


def bench_concurrency(svc: Service) -> dict:
    single, seconds = svc.generate(seed=100, temperature=0.8)
    single_tok_s = single.usage.completion_tokens / seconds
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda s: svc.generate(seed=s, temperature=0.8), range(200, 204)))
    wall = time.perf_counter() - started
    tokens = sum(r.usage.completion_tokens for r, _ in results)
    latencies = [s for _, s in results]
    svc.settings.temperature = 0.0
    return {"single_tok_s": single_tok_s, "aggregate_tok_s": tokens / wall, "speedup": (tokens / wall) / single_tok_s,
            "latencies_s": latencies, "slowest_over_fastest": max(latencies) / min(latencies),
            "all_completed": all(r.usage.completion_tokens > 0 for r, _ in results)}


def bench_swap(svc: Service, root: Path, swaps: int) -> dict:
    """Alternates two LoRA adapters on the engine while two requests stream; every request must finish."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from vispod.generator.adapters import AdapterVersion

    gguf = resolve_gguf("smollm2")
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    versions = []
    for i in range(2):
        peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)
        peft_model.save_pretrained(root / f"lora{i}")
        peft_model.unload()
        versions.append(AdapterVersion(f"bench{i}@1", root / f"lora{i}", "smollm2"))
    backend = svc.app.backend
    backend.on_adapter_loaded(versions[0])   # converts once (cached), then every load reads the GGUF LoRA
    backend.on_adapter_loaded(versions[1])
    inp = prompt_input(64)
    inp.temperature = 0.0
    swap_times, completed, failed = [], 0, 0
    for k in range(swaps):
        old, new = versions[k % 2], versions[(k + 1) % 2]
        backend.on_adapter_loaded(old)
        backend.on_adapter_retired(new.adapter_id)   # unused: freed now, so the swap below really loads it
        inflight = []
        for _ in range(2):
            inp.adapter = old
            inflight.append(backend.stream(inp))
        readers = [threading.Thread(target=lambda s=s: "".join(s)) for s in inflight]
        for r in readers:
            r.start()
        time.sleep(0.2)
        started = time.perf_counter()
        backend.on_adapter_loaded(new)            # swap: the new one loaded (from its cached GGUF), the old retired
        backend.on_adapter_retired(old.adapter_id)
        swap_times.append(time.perf_counter() - started)
        for r in readers:
            r.join(120)
        for s in inflight:
            if s.finish_reason in ("stop", "length"):
                completed += 1
            else:
                failed += 1
    return {"p50_s": pct(swap_times, 0.5), "p99_s": pct(swap_times, 0.99), "swaps": swaps,
            "requests_in_flight_completed": completed, "requests_dropped": failed}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--swaps", type=int, default=20)
    args = ap.parse_args()
    inp = prompt_input(args.max_new_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        svc = Service(root, args.max_new_tokens)
        prompt_text = svc.app.backend.render_prompt(inp)
        print("== bare llama-cpp-python and vispod llamacpp through gRPC, interleaved", flush=True)
        runner = Bare(prompt_text, args.max_new_tokens)
        bare, service = bench_side_by_side(runner, svc, args.repeats)
        runner.close()
        print("== concurrency 4", flush=True)
        conc = bench_concurrency(svc)
        print("== adapter swaps", flush=True)
        swap = bench_swap(svc, root, args.swaps)
        svc.close()
        print("== transformers", flush=True)
        hf = bench_transformers(inp)
    result = {
        "model": "SmolLM2-135M-Instruct (real weights, Q4_1 GGUF)", "max_new_tokens": args.max_new_tokens,
        "greedy": True, "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "transformers_tok_s": round(hf["tok_s"], 2), "bare_llamacpp_tok_s": round(bare["tok_s"], 2),
        "vispod_llamacpp_tok_s": round(service["tok_s"], 2),
        "speedup_vs_transformers": round(service["tok_s"] / hf["tok_s"], 2),
        "ratio_to_bare": round(service["tok_s"] / bare["tok_s"], 3),
        "concurrency1_tok_s": round(conc["single_tok_s"], 2),
        "concurrency4_aggregate_tok_s": round(conc["aggregate_tok_s"], 2),
        "concurrency4_speedup": round(conc["speedup"], 2),
        "concurrency4_latencies_s": [round(x, 2) for x in conc["latencies_s"]],
        "concurrency4_all_completed": conc["all_completed"],
        "adapter_swap_p50_s": round(swap["p50_s"], 4), "adapter_swap_p99_s": round(swap["p99_s"], 4),
        "adapter_swaps": swap["swaps"], "requests_in_flight_completed": swap["requests_in_flight_completed"],
        "requests_dropped": swap["requests_dropped"],
        "tokens": {"transformers": hf["tokens"], "bare": bare["tokens"], "vispod": service["tokens"]},
        "load_s": {"transformers": round(hf["load_s"], 2), "bare_llamacpp": round(bare["load_s"], 2)},
        "runs_tok_s": {"bare": [round(x, 2) for x in bare["runs"]], "vispod": [round(x, 2) for x in service["runs"]]},
        "ratio_to_bare_per_pair": [round(v / b, 3) for b, v in zip(bare["runs"], service["runs"], strict=True)],
    }
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "engine.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
