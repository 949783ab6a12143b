"""bench-synth: dataset-builder throughput on CPU with the tiny random pipeline (random weights: timings only).

Builds pairs in process (local synth mode) from a made-up corpus in the SPoRC JSONL layout and reports:
- pairs per hour (steady state: pipeline loaded, imports paid) and the one-off setup time;
- the share of build time spent outside the text-to-image model (source reading, excerpt search,
  scoring, prompts, PNG encoding, hashing, atomic writes, fsyncs) vs inside the pipeline calls.
Writes bench-results/synth.json. Knobs: BENCH_SYNTH_PAIRS, BENCH_SYNTH_SIZE, BENCH_SYNTH_STEPS, BENCH_SYNTH_THREADS.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

OUT = Path("bench-results/synth.json")
PAIRS = int(os.environ.get("BENCH_SYNTH_PAIRS", "8"))
SIZE = int(os.environ.get("BENCH_SYNTH_SIZE", "64"))
STEPS = int(os.environ.get("BENCH_SYNTH_STEPS", "4"))
THREADS = int(os.environ.get("BENCH_SYNTH_THREADS", "1"))


def _histogram_sum(histogram: object) -> float:
    for metric in histogram.collect():  # type: ignore[attr-defined]
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                return float(sample.value)
    return 0.0


def main() -> int:
    started = time.perf_counter()
    from vispod.dataset.build import BuildConfig, SynthParams, build_dataset
    from vispod.dataset.clients import LocalSynthClient
    from vispod.dataset.sporc_synthetic import make_episodes, write_jsonl_layout
    from vispod.synth import metrics
    from vispod.synth.engine import Synthesizer
    from vispod.synth.settings import SynthSettings
    from vispod.synth.tiny import build_tiny_sd_pipeline

    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        pipeline = build_tiny_sd_pipeline(root / "tiny")
        tiny_build_s = time.perf_counter() - t0
        sporc = write_jsonl_layout(root / "sporc", make_episodes(PAIRS + 2, seed=3))
        settings = SynthSettings(model_path=pipeline, cpu_threads=THREADS, artifact_root=root / "art")
        t0 = time.perf_counter()
        synth = Synthesizer(settings)
        load_s = time.perf_counter() - t0
        client = LocalSynthClient(synth)
        # Warm-up pair (first-call allocations), not counted.
        params = SynthParams(width=SIZE, height=SIZE, steps=STEPS, guidance=5.0)
        build_dataset(BuildConfig(sporc=sporc, out=root / "warm", n=1, synth=params, progress=False), client)
        setup_s = time.perf_counter() - started

        model_before = _histogram_sum(metrics.BATCH_SECONDS)
        t0 = time.perf_counter()
        result = build_dataset(BuildConfig(sporc=sporc, out=root / "ds", n=PAIRS, synth=params, progress=False), client)
        build_s = time.perf_counter() - t0
        model_s = _histogram_sum(metrics.BATCH_SECONDS) - model_before

        # The same build again is a resume with nothing to do: the cost of checking a finished dataset.
        t0 = time.perf_counter()
        build_dataset(BuildConfig(sporc=sporc, out=root / "ds", n=PAIRS, synth=params, progress=False), client)
        resume_noop_s = time.perf_counter() - t0

    report = {
        "benchmark": "synth",
        "random_weights": True,
        "note": "tiny random Stable Diffusion pipeline on CPU: throughput of the builder, not of a real model",
        "pairs": result.pairs_total,
        "images": result.pairs_total * 5,
        "image_size": SIZE,
        "steps": STEPS,
        "torch_threads": THREADS,
        "pairs_per_hour": round(result.pairs_total / build_s * 3600, 1),
        "images_per_second": round(result.pairs_total * 5 / build_s, 3),
        "seconds_per_pair": round(build_s / result.pairs_total, 3),
        "model_seconds": round(model_s, 3),
        "build_seconds": round(build_s, 3),
        "share_outside_model": round(1 - model_s / build_s, 4),
        "resume_noop_seconds": round(resume_noop_s, 3),
        "setup_seconds": round(setup_s, 2),
        "tiny_pipeline_build_seconds": round(tiny_build_s, 3),
        "pipeline_load_seconds": round(load_s, 3),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
