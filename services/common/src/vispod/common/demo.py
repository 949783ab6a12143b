"""`vispod demo` (what `make demo` runs): one photo story through the whole local system.

A local broker and every service (`vispod up`), the story published on Kafka, then the dialogue,
its metrics and a judgement printed, and an HTML report written. It says plainly which models were
real: the embedded text model (SmolLM2-135M-Instruct) is real and reads captions, not pixels; the CLIP
model that scores grounding is random-initialised (no CLIP weights exist offline).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

from vispod.common.bus import EventPublisher, EventReader
from vispod.common.example_story import write_example_story
from vispod.common.local_kafka import die_with_parent
from vispod.common.local_stack import SHARED_DATASETS, UP_STATE
from vispod.common.settings import KafkaSettings
from vispod.common.submit import build_event, describe, follow
from vispod.common.topics import Topic, dlq_topic
from vispod.v1 import common_pb2, events_pb2, judge_pb2, judge_pb2_grpc

VIST_SET = SHARED_DATASETS / "vist-podcast-50"
REFERENCE_SYSTEM = "qwen3-vl-32b-sporc-lora"
# SmolLM2 writes ~6 tokens/s on 2 cores: a short dialogue keeps the demo within five minutes.
DEMO_TARGET_WORDS = 250
# A 135M model drifts into monologues; the request's style field asks for a brisk exchange.
DEMO_STYLE = "Keep every turn to one or two sentences and alternate between the two hosts often."
# The demo's flow uses these; synth and gate start with `vispod up` but have no part in one story.
DEMO_SERVICES = "generator,metrics,judge"
# Embedded defaults: real SmolLM2 on captions; random CLIP (labelled); SmolLM2 as the local judge.
DEMO_ENV = {
    "VISPOD_GENERATOR_BACKEND": "local",
    "VISPOD_GENERATOR_TEXT_ONLY": "true",
    "VISPOD_GENERATOR_MODEL_PATH": "smollm2",
    "VISPOD_GENERATOR_MAX_NEW_TOKENS": "420",
    "VISPOD_METRICS_CLIP_RANDOM_INIT": "true",
    "VISPOD_JUDGE_JUDGES": '["local"]',
    # One criterion (the paper's headline) keeps the CPU-only demo within its five minutes.
    "VISPOD_JUDGE_CRITERIA": '["naturalness"]',
    "VISPOD_JUDGE_LOCAL_MAX_INPUT_TOKENS": "2500",
    "VISPOD_JUDGE_LOCAL_MAX_NEW_TOKENS": "48",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on one photo story, with an HTML report")
    p.add_argument("--story", type=Path, default=None, help="a story folder (default: a VIST story, else an example)")
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--timeout", type=float, default=420.0)
    p.set_defaults(func=run_demo)


def pick_story(story: Path | None, out: Path) -> tuple[Path, str]:
    if story:
        if not (story / "story.json").exists() and not any(story.glob("*.jpg")):
            raise SystemExit(f"{story}: not a story folder (no story.json or images)")
        return story.resolve(), f"story {story}"
    if VIST_SET.exists():
        for folder in sorted(VIST_SET.glob("story_*")):
            meta = json.loads((folder / "story.json").read_text())
            # The embedded text model reads captions: take the first story with every photo and caption.
            if meta.get("complete") and all(i.get("vist_caption") for i in meta["images"]):
                return folder, f"VIST story {meta['vist_story_id']} from {VIST_SET}"
    print(f"note: {VIST_SET} is absent; using an example story made from bundled photos", flush=True)
    return write_example_story(out / "example-story"), "the example story (scikit-image sample photos)"


def caption_baseline(event: events_pb2.ImageSetSubmitted) -> common_pb2.Dialogue:
    """A transparent baseline system: two hosts read the captions aloud. Judged when no reference exists."""
    turns = []
    for i, ref in enumerate(event.images):
        turns.append(common_pb2.Turn(speaker="Speaker 1", text=f"Next: {ref.caption or 'another moment'}",
                                     image_refs=[i]))
        turns.append(common_pb2.Turn(speaker="Speaker 2", text="I see. Let's keep going.", image_refs=[i]))
    text = "\n".join(f"{t.speaker}: {t.text}" for t in turns)
    return common_pb2.Dialogue(turns=turns, text=text)


def reference_dialogue(story: Path) -> tuple[str, common_pb2.Dialogue] | None:
    path = story / f"{REFERENCE_SYSTEM}.txt"
    if not path.exists():
        return None
    return REFERENCE_SYSTEM, common_pb2.Dialogue(text=path.read_text())


class Stack:
    """`vispod up` as a child process; its output goes to a log, progress lines are echoed."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "up.log"
        env = {**DEMO_ENV, **os.environ, "PYTHONUNBUFFERED": "1"}
        UP_STATE.unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "vispod.common.cli", "up", "--workdir", str(workdir),
                                      "--services", DEMO_SERVICES],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     preexec_fn=die_with_parent)
        self.ready = threading.Event()
        self.lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "w") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                self.lines.append(line)
                if line.startswith(("kafka:", "starting", "stopping", "stopped")) or "grpc 127.0.0.1" in line \
                        or "did not become ready" in line or "exited with" in line:
                    print(f"  [up] {line.rstrip()}", flush=True)
                if line.startswith("ready"):
                    self.ready.set()

    def wait_ready(self, timeout: float) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(1.0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the local stack did not start; see {self.log_path}")
        return json.loads(UP_STATE.read_text())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def run_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    out = args.out.resolve()
    story, story_desc = pick_story(args.story, out)
    print(f"vispod demo — {story_desc}", flush=True)
    print("starting the local system (broker + services; SmolLM2 takes ~15 s to load) …", flush=True)
    stack = Stack(out / "up")
    try:
        state = stack.wait_ready(240)
        kafka = KafkaSettings(bootstrap=str(state["bootstrap"]))
        ns = argparse.Namespace(folder=story, speaker=["Alex:an upbeat host who loves stories",
                                                       "Sam:a thoughtful photographer"],
                                target_words=DEMO_TARGET_WORDS, style=DEMO_STYLE, language="en", adapter="", seed=7)
        event = build_event(ns, state)  # the story's photos are staged where the services may read them
        reader = EventReader(kafka, [Topic.DIALOGUE_GENERATED, Topic.METRICS_COMPUTED,
                                     dlq_topic("generator", kafka.topic_prefix)], from_beginning=False)
        publisher = EventPublisher(kafka, "demo")
        publisher.publish(Topic.IMAGESET_SUBMITTED, event)
        publisher.close()
        print(f"published ImageSetSubmitted {event.image_set_id} ({len(event.images)} photos); generating …",
              flush=True)
        remaining = args.timeout - (time.monotonic() - started)
        got = follow(reader, event, remaining, lambda env: print(describe(env), flush=True))
        reader.close()
        dialogue = got.get("dialogue")
        if dialogue is None or dialogue.status != common_pb2.STATUS_OK:
            print(f"the demo produced no dialogue; logs in {out / 'up'}", flush=True)
            return 1
        judgement = judge(state, event, dialogue, story)
        report = write_report(out, story, event, dialogue, got.get("metrics"), judgement)
        print(f"\nHTML report: {report}")
        print(models_statement(dialogue, got.get("metrics")))
        print(f"demo finished in {time.monotonic() - started:.0f} s")
        return 0
    finally:
        stack.stop()


def judge(state: dict[str, object], event: events_pb2.ImageSetSubmitted, dialogue: events_pb2.DialogueGenerated,
          story: Path) -> events_pb2.JudgementCompleted | None:
    services = state.get("services", {})
    if "judge" not in services:  # type: ignore[operator]
        print("judge service not running: no judgement", flush=True)
        return None
    ref = reference_dialogue(story)
    system_b, b = ref if ref else ("caption-baseline", caption_baseline(event))
    system_a = dialogue.system or dialogue.model
    print(f"judging {system_a} (A) against {system_b} (B), both orders …", flush=True)
    port = services["judge"]["grpc"]  # type: ignore[index]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = judge_pb2_grpc.JudgeServiceStub(channel)
        try:
            resp = stub.Compare(judge_pb2.CompareRequest(
                image_set_id=event.image_set_id, images=event.images, a=dialogue.dialogue, b=b,
                system_a=system_a, system_b=system_b), timeout=240)
        except grpc.RpcError as exc:
            print(f"judgement failed: {exc.code().name}: {exc.details()}", flush=True)
            return None
    result = events_pb2.JudgementCompleted(image_set_id=event.image_set_id, correlation_id=event.correlation_id,
                                           system_a=system_a, system_b=system_b, verdicts=resp.verdicts)
    for v in resp.verdicts:
        print(f"  {v.judge:>8} {v.criterion:<18} {events_pb2.Outcome.Name(v.outcome):<16} {v.rationale[:90]}")
    return result


def write_report(out: Path, story: Path, event: events_pb2.ImageSetSubmitted, dialogue: events_pb2.DialogueGenerated,
                 metrics: events_pb2.MetricsComputed | None, judgement: events_pb2.JudgementCompleted | None) -> Path:
    from urllib.parse import unquote, urlparse

    from vispod.gate.story_report import render_story_report

    images = [Path(unquote(urlparse(ref.uri).path)) for ref in event.images]
    captions = [ref.caption for ref in event.images]
    notes = models_statement(dialogue, metrics).splitlines()
    return render_story_report(out / "report.html", story, images, captions, dialogue, metrics, judgement, notes)


def models_statement(dialogue: events_pb2.DialogueGenerated, metrics: events_pb2.MetricsComputed | None) -> str:
    lines = ["Which models were real:"]
    weights = "RANDOM weights" if dialogue.random_weights else "real weights"
    seen = "read the photos' captions, not their pixels" if dialogue.input_mode == events_pb2.INPUT_MODE_CAPTIONS \
        else "read the pixels"
    lines.append(f"- dialogue: {dialogue.model} ({weights}), backend {dialogue.backend}, {seen}")
    if metrics is not None:
        g = metrics.grounding
        lines.append(f"- grounding: {g.clip_model or 'CLIP'} with "
                     + ("RANDOM weights — the CLIPScore numbers measure nothing" if g.random_weights
                        else "real weights"))
    lines.append("- judge: SmolLM2-135M-Instruct (real weights, a very small model: its verdicts are a demo of "
                 "the protocol, not evidence)")
    return "\n".join(lines)
