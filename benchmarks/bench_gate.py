"""bench-gate: `vispod eval` scoring throughput and the gate's own overhead per decision.

- eval: the 100 transcripts of shared/datasets/vist-podcast-50 (or, where it is absent, a generated set) scored
  through the real MetricsService over gRPC (in-process, style only: no CLIP weights exist offline), with the
  report written (Markdown, CSV, HTML with plots): transcripts/s and report seconds.
- gate: one decision on a 3-story set against scripted generator/metrics/judge gRPC servers that answer at once,
  so the time is the gate's own (RPC fan-out, decision, log, HTML report): seconds per decision.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vispod.evaluation.eval_report import write_eval_report
from vispod.evaluation.local_services import local_metrics
from vispod.evaluation.runner import EvalOptions, run_evaluation
from vispod.gate.clients import Clients
from vispod.gate.evalset import load_eval_set, write_builtin_set
from vispod.gate.gate import Gate
from vispod.gate.settings import GateSettings

OUT = Path("bench-results/gate.json")
DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "vist-podcast-50"
SYSTEMS = ["qwen3-vl-32b-sporc-lora", "qwen3-vl-235b-base"]
DECISIONS = int(os.environ.get("BENCH_GATE_DECISIONS", "5"))


def bench_eval(tmp: Path) -> dict:
    if DATASET.is_dir():
        set_dir, systems, source = DATASET, SYSTEMS, "vist-podcast-50"
    else:
        set_dir, systems, source = write_builtin_set(tmp / "set", stories=20), ["a", "b"], "generated (dataset absent)"
        for folder in set_dir.iterdir():
            (folder / "a.txt").write_text("Speaker 1: the waves were huge.\nSpeaker 2: and the dog ran.\n" * 20)
            (folder / "b.txt").write_text("Speaker 1: what a sunset!\nSpeaker 2: the pier glowed.\n" * 30)
    stories = load_eval_set(set_dir)
    with local_metrics([set_dir], grounding=False, clip_model="ViT-B-32", clip_weights=None) as addr:
        clients = Clients(metrics_addr=addr)
        started = time.perf_counter()
        result = run_evaluation(stories, set_dir, clients, EvalOptions(systems=systems))
        scoring = time.perf_counter() - started
        clients.close()
    started = time.perf_counter()
    write_eval_report(result, tmp / "report")
    report = time.perf_counter() - started
    return {"source": source, "transcripts": len(result.scores), "scoring_seconds": round(scoring, 3),
            "transcripts_per_second": round(len(result.scores) / scoring, 2), "report_seconds": round(report, 3)}


def bench_gate(tmp: Path) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gate"))
    from gate_scripted import ScriptedGenerator, ScriptedJudge, ScriptedMetrics, Servers

    servers = Servers()
    try:
        gen = ScriptedGenerator()
        gen.register("pod@0", 3)
        settings = GateSettings(artifact_root=tmp / "gate", generator_addr=servers.serve(gen),
                                metrics_addr=servers.serve(ScriptedMetrics()),
                                judge_addr=servers.serve(ScriptedJudge()), apply_via_grpc=False, candidate_wait_s=0)
        gate = Gate(settings, Clients(settings.generator_addr, settings.metrics_addr, settings.judge_addr),
                    load_eval_set(write_builtin_set(tmp / "gate-set")))
        times = []
        for i in range(1, DECISIONS + 1):
            gen.register(f"pod@{i}")
            started = time.perf_counter()
            entry = gate.evaluate_and_record(f"pod@{i}", f"event-{i}")
            times.append(time.perf_counter() - started)
            assert entry["decision"] == "promote", entry["reason"]
        gate.clients.close()
    finally:
        servers.stop()
    return {"stories": 3, "decisions": DECISIONS, "seconds_per_decision_median": round(statistics.median(times), 4),
            "seconds_per_decision_max": round(max(times), 4)}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        results = {"benchmark": "gate", "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                                    "load_avg_1m": round(os.getloadavg()[0], 2)},
                   "eval": bench_eval(Path(tmp)), "gate": bench_gate(Path(tmp))}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
