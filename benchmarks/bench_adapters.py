"""bench-adapters: adapter swap latency under load, tiny random Qwen3-VL on CPU (random weights: timings only).

Worker threads resolve the default adapter through the registry and generate with the local model via
PeftSwitcher, while an admin thread promotes and rolls back repeatedly. Measured:
- update: AdapterRegistry.update (persist + new routing) — the control plane;
- resolve: AdapterRegistry.resolve while updates happen;
- admission with a switch: a request's wait in `using()` when it must switch the adapter (drain of the
  requests in flight on the old adapter + set_adapter), vs admission without a switch;
- time to serve: from update() returning until the first request on the new adapter is admitted;
- torn requests: generations whose tokens differ from the reference of the adapter they resolved (must be 0).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import torch

from vispod.common.events import Envelope
from vispod.devkit.testing.adapter_files import make_lora_adapter, published_event
from vispod.devkit.testing.tiny_vlm import build_tiny_qwen3_vl
from vispod.generator.adapters import AdapterRegistry
from vispod.generator.adapters.peft_switch import PeftSwitcher
from vispod.v1 import generator_pb2

OUT = Path("bench-results/adapters.json")
WORKERS = int(os.environ.get("BENCH_ADAPTERS_WORKERS", "4"))
DURATION_S = float(os.environ.get("BENCH_ADAPTERS_SECONDS", "30"))
SWAP_EVERY_S = float(os.environ.get("BENCH_ADAPTERS_SWAP_EVERY_S", "0.25"))
NEW_TOKENS = 4
A = generator_pb2.UpdateAdapterRequest


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float], scale: float = 1000.0, unit: str = "ms") -> dict:
    return {"n": len(values), f"p50_{unit}": _r(pct(values, 50), scale), f"p99_{unit}": _r(pct(values, 99), scale),
            f"max_{unit}": _r(max(values) if values else None, scale),
            f"mean_{unit}": _r(statistics.fmean(values) if values else None, scale)}


def _r(v: float | None, scale: float) -> float | None:
    return None if v is None else round(v * scale, 4)


def main() -> int:
    torch.set_num_threads(1)   # worker threads share 2 cores; intra-op threads would only contend
    from transformers import AutoModelForImageTextToText, AutoProcessor

    tmp = Path(tempfile.mkdtemp(prefix="bench-adapters-"))
    model_dir = build_tiny_qwen3_vl(tmp / "tiny-qwen3-vl")
    registry = AdapterRegistry(tmp / "state", tmp / "cache", model_dir.name)
    ids = []
    for i in (1, 2, 3):
        folder = make_lora_adapter(model_dir, tmp / f"lora{i}", seed=i)
        msg = published_event(folder, f"bench@{i}", model_dir.name)
        list(registry.handle_published(Envelope(str(uuid.uuid4()), msg.DESCRIPTOR.full_name, "bench", "", msg)))
        ids.append(msg.adapter_id)
    registry.update(A(adapter_id=ids[0], action=A.ACTION_PROMOTE))

    processor = AutoProcessor.from_pretrained(model_dir)
    inputs = processor(text=["<|im_start|>user\nWrite a dialogue<|im_end|>\n<|im_start|>assistant\n"],
                       return_tensors="pt")
    switcher = PeftSwitcher(AutoModelForImageTextToText.from_pretrained(model_dir).eval())

    def generate(model) -> list[int]:
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
        return out[0, inputs["input_ids"].shape[1]:].tolist()

    # References, and first-load latency (PeftModel.from_pretrained / load_adapter) outside the measured run.
    reference: dict[str, list[int]] = {}
    first_load: list[float] = []
    for adapter_id in ids:
        started = time.perf_counter()
        with switcher.using(registry.get(adapter_id)) as m:
            first_load.append(time.perf_counter() - started)
            reference[adapter_id] = generate(m)
    with switcher.using(None) as m:
        reference["base"] = generate(m)
    assert len({tuple(v) for v in reference.values()}) == len(reference), "adapters must change the output"
    bare = []
    with switcher.using(registry.get(ids[0])) as m:
        for _ in range(5):
            started = time.perf_counter()
            generate(m)
            bare.append(time.perf_counter() - started)

    stop = threading.Event()
    lock = threading.Lock()
    resolve_s: list[float] = []
    admit_switch: list[float] = []
    admit_same: list[float] = []
    gen_s: list[float] = []
    torn = 0
    done = 0
    admissions: list[tuple[float, str]] = []   # (time admitted, adapter) in order
    errors: list[str] = []

    def worker(n: int) -> None:
        nonlocal torn, done
        i = 0
        while not stop.is_set():
            try:
                t0 = time.perf_counter()
                version = registry.resolve("", f"w{n}-{i}")
                t1 = time.perf_counter()
                with switcher.using(version) as m:
                    t2 = time.perf_counter()
                    switched = switcher.switched
                    key = version.adapter_id if version else "base"
                    with lock:
                        admissions.append((t2, key))
                    out = generate(m)
                t3 = time.perf_counter()
            except Exception as exc:  # reported in the result
                errors.append(repr(exc))
                return
            with lock:
                resolve_s.append(t1 - t0)
                (admit_switch if switched else admit_same).append(t2 - t1)
                gen_s.append(t3 - t2)
                torn += out != reference[key]
                done += 1
            i += 1

    update_s: list[float] = []
    time_to_serve: list[float] = []

    def admin() -> None:
        n = 0
        while not stop.is_set():
            target = ids[1 + n % 2]
            for req in (A(adapter_id=target, action=A.ACTION_PROMOTE), A(action=A.ACTION_ROLLBACK)):
                if stop.wait(SWAP_EVERY_S):
                    return
                with lock:
                    mark = len(admissions)
                started = time.perf_counter()
                registry.update(req)
                ended = time.perf_counter()
                update_s.append(ended - started)
                active = registry.active_adapter_id or "base"
                deadline = ended + 10
                while time.perf_counter() < deadline and not stop.is_set():
                    with lock:
                        seen = next((t for t, k in admissions[mark:] if k == active and t >= ended), None)
                        mark = max(mark, len(admissions) - 64)
                    if seen is not None:
                        time_to_serve.append(seen - ended)
                        break
                    time.sleep(0.0005)
            n += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(WORKERS)] + [threading.Thread(target=admin)]
    swaps_before = switcher.swaps
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(DURATION_S)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    swaps_during = switcher.swaps - swaps_before

    # The switch alone, with nothing in flight: alternate adapters without generating.
    idle_switch: list[float] = []
    for n in range(60):
        t0 = time.perf_counter()
        with switcher.using(registry.get(ids[n % 3])):
            idle_switch.append(time.perf_counter() - t0)

    result = {
        "benchmark": "adapters",
        "random_weights": True,
        "model": "tiny random Qwen3-VL (vispod.devkit.testing.tiny_vlm), LoRA r=4 on q/k/v/o, random non-zero init",
        "device": "cpu",
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                 "load_avg_1m": round(os.getloadavg()[0], 2)},
        "config": {"workers": WORKERS, "duration_s": DURATION_S, "swap_every_s": SWAP_EVERY_S,
                   "new_tokens": NEW_TOKENS},
        "requests": done,
        "requests_per_s": round(done / elapsed, 2),
        "swaps_requested": len(update_s),
        "adapter_switches": swaps_during,
        "torn_requests": torn,
        "errors": errors[:5],
        "swap_latency": {
            "time_to_serve": summary(time_to_serve),
            "admission_with_switch": summary(admit_switch),
            "admission_without_switch": summary(admit_same),
            "switch_idle": summary(idle_switch),
            "registry_update": summary(update_s),
            "resolve_us": summary(resolve_s, 1e6, "us"),
        },
        "generate_ms": summary(gen_s),
        "generate_alone_ms": summary(bare),
        "first_load_ms": summary(first_load),
        "notes": "time_to_serve = waiting for the requests in flight on the old adapter (up to one generate call) "
                 "+ the switch (switch_idle). registry_update includes an fsync of the state file. "
                 "Random weights: latency only, says nothing about quality.",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if torn == 0 and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
