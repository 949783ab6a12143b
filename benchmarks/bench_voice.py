"""Benchmark of the voice service -> bench-results/voice.json.

1. Real-time factor (wall time / audio duration; target <= 0.3 on 2 cores) of rendering a paper transcript
   excerpt to a finished podcast (synthesis, per-turn levelling, loudness pass, WAV + Ogg Opus), for the Piper
   voice at 1 and 2 onnxruntime threads and for the espeak-ng fallback. Synthesis-only time is reported too.
2. Time to first audio of a streamed dialogue: a real gRPC VoiceService (in-process server, loopback channel),
   from sending StreamRender to the first turn's PCM arriving, and to the last.

The excerpt: the first turns of the paper's fine-tuned transcript of VIST story 48269 when
../shared/datasets/vist-podcast-50 is present, else the built-in excerpt the tests use (same text, shorter).

Usage: python benchmarks/bench_voice.py [--turns 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TRANSCRIPT = REPO.parent / "shared" / "datasets" / "vist-podcast-50" / "story_48269" / "qwen3-vl-32b-sporc-lora.txt"
FALLBACK = ("Speaker 1: So I was looking through some old photos the other day, and I came across this one of a "
            "totally wrecked bus. It's just sitting out in the middle of nowhere, all broken down.\n"
            "Speaker 2: Yeah, that's a pretty bleak scene. I've seen a lot of abandoned vehicles, but that one's "
            "especially rough. You can tell nature's slowly taking it over.\n"
            "Speaker 1: And then you look at the next photo, all those tires stacked up in a dirty room.\n"
            "Speaker 2: It's like the whole place is a museum of things nobody wanted anymore.\n")


def dialogue(turns: int):  # type: ignore[no-untyped-def]
    from vispod.v1 import common_pb2
    from vispod.voice.dialogue import parse_transcript

    text = TRANSCRIPT.read_text(encoding="utf-8") if TRANSCRIPT.is_file() else FALLBACK
    return common_pb2.Dialogue(turns=parse_transcript(text)[:turns]), TRANSCRIPT.is_file()


def bench_render(engine_name: str, threads: int, source, repeats: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from vispod.voice.engines import build_engine
    from vispod.voice.podcast import Podcaster
    from vispod.voice.settings import VoiceSettings

    settings = VoiceSettings(engine=engine_name, piper_threads=threads, consume=False)
    t0 = time.perf_counter()
    engine = build_engine(settings)
    load_s = time.perf_counter() - t0
    podcaster = Podcaster(engine, settings)
    plan = podcaster.plan(source)
    podcaster.render_to(podcaster.plan(source.__class__(turns=source.turns[:1])), Path(tempfile.mkdtemp()))  # warm-up
    best: dict[str, Any] = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            rendered = podcaster.render_to(plan, Path(tmp))
            wall = time.perf_counter() - t0
        if not best or wall < best["wall_s"]:
            best = {"wall_s": round(wall, 2), "synthesis_s": round(rendered.synthesis_seconds, 2),
                    "audio_s": round(rendered.duration, 2), "loudness_lufs": round(rendered.loudness_lufs, 2)}
    best["real_time_factor"] = round(best["wall_s"] / best["audio_s"], 3)
    best["synthesis_real_time_factor"] = round(best["synthesis_s"] / best["audio_s"], 3)
    best.update(engine=engine_name, threads=threads if engine_name == "piper" else None, load_s=round(load_s, 2),
                voices=plan.voices)
    return best


def bench_stream(source, repeats: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    import grpc

    from vispod.v1 import events_pb2, voice_pb2, voice_pb2_grpc
    from vispod.voice.service import build
    from vispod.voice.settings import VoiceSettings

    settings = VoiceSettings(grpc_port=0, metrics_port=0, consume=False, piper_threads=2,
                             artifact_root=Path(tempfile.mkdtemp()))
    handle = build(settings).start()
    runs = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{handle.grpc_port}") as channel:
            stub = voice_pb2_grpc.VoiceServiceStub(channel)
            for _ in range(repeats + 1):  # the first call warms up
                t0 = time.perf_counter()
                arrivals, audio_s = [], 0.0
                request = voice_pb2.RenderRequest(generated=events_pb2.DialogueGenerated(dialogue=source))
                for chunk in stub.StreamRender(request, timeout=600):
                    arrivals.append(time.perf_counter() - t0)
                    audio_s = chunk.timing.end_seconds
                runs.append({"first_audio_s": round(arrivals[0], 3), "last_audio_s": round(arrivals[-1], 3),
                             "turns": len(arrivals), "audio_s": round(audio_s, 2)})
    finally:
        handle.stop()
    best = min(runs[1:], key=lambda r: r["first_audio_s"])
    return {**best, "first_turn_words": len(source.turns[0].text.split())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "voice.json")
    args = parser.parse_args()
    source, from_paper = dialogue(args.turns)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
                    "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]},
        "workload": {"source": "paper transcript, VIST story 48269 (qwen3-vl-32b-sporc-lora)" if from_paper
                     else "built-in excerpt", "turns": len(source.turns),
                     "words": sum(len(t.text.split()) for t in source.turns)},
        "target": {"real_time_factor_max": 0.3},
    }
    results["render"] = [bench_render("piper", 1, source, args.repeats), bench_render("piper", 2, source, args.repeats),
                         bench_render("espeak", 1, source, 1)]
    results["stream"] = bench_stream(source, args.repeats)
    piper = min((r for r in results["render"] if r["engine"] == "piper"), key=lambda r: r["real_time_factor"])
    results["summary"] = {"piper_real_time_factor": piper["real_time_factor"], "piper_threads": piper["threads"],
                          "meets_target": piper["real_time_factor"] <= 0.3,
                          "time_to_first_audio_s": results["stream"]["first_audio_s"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["summary"], indent=2))
    print(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
