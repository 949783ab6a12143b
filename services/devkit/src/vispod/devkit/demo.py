"""`vispod demo` (what `make demo` runs): one photo story through the whole local system.

A LoRA adapter for SmolLM2 (the one `make mini-paper` promoted, else a quick one trained here once and cached),
a local broker and the services (`vispod up`), the adapter published on the bus as the trainer Job does, the
story published on Kafka, the tuned dialogue and its metrics printed, the base model's dialogue beside it, and
an HTML report and `dialogue.json` written. The story is its photos alone by default (captions only with
--captions): SmolLM2-135M-Instruct (real) reads what perception (a real COCO detector, OCR and ImageNet
classifier) found in each photo, and the report draws those facts on the photos. It says plainly which models
were real; the CLIP model that scores grounding is random-initialised (no CLIP weights exist offline).
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
from urllib.parse import unquote, urlparse

import grpc

from vispod.common.bus import EventPublisher, EventReader
from vispod.common.settings import DatasetSettings, KafkaSettings
from vispod.common.story_folder import IMAGE_MIME, iter_stories, read_story
from vispod.common.topics import Topic, dlq_topic
from vispod.common.visual_vocabulary import coco_category, concrete_nouns
from vispod.common.what_was_seen import seen_note
from vispod.devkit.demo_adapter import demo_adapter, publish_and_route
from vispod.devkit.example_story import write_example_story
from vispod.devkit.local_adapter_store import STORES
from vispod.devkit.local_kafka import die_with_parent
from vispod.devkit.local_stack import UP_STATE
from vispod.devkit.submit import build_event, describe, follow
from vispod.v1 import common_pb2, events_pb2, generator_pb2, generator_pb2_grpc
from vispod.voice.player import podcast_player

REFERENCE_SYSTEM = "qwen3-vl-32b-sporc-lora"
DEMO_TARGET_WORDS = 600
DEMO_SPEAKERS = ["Alex:an upbeat host who loves stories", "Sam:a thoughtful photographer"]
# The demo's flow uses these; synth, judge and gate start with `vispod up` but have no part in one story
# (no capable judge exists offline: SmolLM2-135M gave invalid verdicts).
DEMO_SERVICES = "generator,metrics"
# Embedded defaults: real SmolLM2 in llama.cpp on captions (two requests at once: tuned and base); random CLIP
# (labelled).
DEMO_ENV = {
    "VISPOD_GENERATOR_BACKEND": "llamacpp",
    "VISPOD_GENERATOR_MODEL_PATH": "smollm2",
    "VISPOD_GENERATOR_CONCURRENCY": "2",
    "VISPOD_METRICS_CLIP_RANDOM_INIT": "true",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on one photo story, with an HTML report")
    p.add_argument("--story", type=Path, default=None, help="a story folder (default: a VIST story, else an example)")
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--timeout", type=float, default=420.0)
    p.add_argument("--no-audio", action="store_true", help="skip rendering the podcast's audio for the report")
    p.add_argument("--captions", action="store_true",
                   help="send the story's captions too (default: the photos alone, as a person sends them)")
    p.add_argument("--store", choices=STORES, default="files",
                   help="adapter store: local folders (files) or signed versions on a local S3 server (s3)")
    p.set_defaults(func=run_demo)


def pick_story(story: Path | None, out: Path) -> tuple[Path, str]:
    if story:
        if not story.is_dir() or not read_story(story).images:
            raise SystemExit(f"{story}: no photos there ({', '.join(sorted(IMAGE_MIME))} files, or a story.json)")
        return story.resolve(), f"story {story}"
    vist = DatasetSettings().vist_podcast_50  # read now: the CLI sets the root after imports
    if vist.exists():
        for story in iter_stories(vist, "story_*"):
            # The first story with all five photos (its captions are sent only with --captions).
            if story.meta.get("complete") and story.fully_captioned:
                return story.folder, f"VIST story {story.story_id} from {vist}"
    why = "has no complete story" if vist.exists() else "is absent"
    print(f"note: {vist} {why}; using an example story made from bundled photos", flush=True)
    return write_example_story(out / "example-story"), "the example story (scikit-image sample photos)"


class Stack:
    """`vispod up` as a child process; its output goes to a log, progress lines are echoed."""

    def __init__(self, workdir: Path, store: str = "files") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "up.log"
        env = {**DEMO_ENV, **os.environ, "PYTHONUNBUFFERED": "1"}
        UP_STATE.unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "vispod.common.cli", "up", "--workdir", str(workdir),
                                      "--services", DEMO_SERVICES, "--store", store],
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
                        or "did not become ready" in line or "exited with" in line or "killed by" in line \
                        or "restart" in line or "ready again" in line or line.startswith("GIVING UP"):
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
    adapter = demo_adapter(out)   # the promoted mini-paper adapter, else a quick one (trained once, cached)
    prepared = time.monotonic() - started
    started = time.monotonic()    # the time budget below is the demo's own, training excluded
    print("starting the local system (broker + services) …", flush=True)
    stack = Stack(out / "up", args.store)
    try:
        state = stack.wait_ready(240)
        kafka = KafkaSettings(bootstrap=str(state["bootstrap"]))
        generator = f"127.0.0.1:{state['services']['generator']['grpc']}"  # type: ignore[index]
        store_env = (state.get("adapter_store") or {}).get("env_file")  # type: ignore[union-attr]
        route = publish_and_route(adapter, out / "up" / "artifacts", kafka, generator, out / "up" / "keys",
                                  store_env=Path(store_env) if store_env else None)
        print(route.note, flush=True)
        ns = argparse.Namespace(folder=story, speaker=DEMO_SPEAKERS, target_words=DEMO_TARGET_WORDS, style="",
                                language="en", adapter=route.request_adapter, seed=7)
        event = build_event(ns, state)  # the story's photos are staged where the services may read them
        if not args.captions:
            for ref in event.images:
                ref.caption = ""
        print(f"sending {len(event.images)} photos" + (" with their captions" if args.captions else
              ", no captions: the model reads what perception finds in them"), flush=True)
        base_result: list[events_pb2.DialogueGenerated] = []
        base = threading.Thread(target=generate_base, args=(generator, event, base_result), daemon=True)
        base.start()
        reader = EventReader(kafka, [Topic.DIALOGUE_GENERATED, Topic.METRICS_COMPUTED,
                                     dlq_topic("generator", kafka.topic_prefix)], from_beginning=False)
        publisher = EventPublisher(kafka, "demo")
        publisher.publish(Topic.IMAGESET_SUBMITTED, event)
        publisher.close()
        print(f"published ImageSetSubmitted {event.image_set_id} ({len(event.images)} photos); generating with "
              f"the tuned model on the bus and, beside it, the base model over gRPC …", flush=True)
        remaining = args.timeout - (time.monotonic() - started)
        got = follow(reader, event, remaining, lambda env: print(describe(env), flush=True))
        reader.close()
        base.join(max(1.0, args.timeout - (time.monotonic() - started)))
        dialogue = got.get("dialogue")
        if dialogue is None or dialogue.status != common_pb2.STATUS_OK:
            print(f"the demo produced no dialogue; logs in {out / 'up'}", flush=True)
            return 1
        compared = base_result[0] if base_result else None
        print(perception_statement(dialogue), flush=True)
        print(discussed_statement(dialogue), flush=True)
        write_dialogue_json(out / "dialogue.json", dialogue)
        notes = models_statement(dialogue, got.get("metrics"), route.note).splitlines()
        audio = "" if args.no_audio else render_audio(dialogue, event, out)
        report = write_report(out, story, event, dialogue, got.get("metrics"), notes, compared, audio)
        print(f"\nHTML report: {report}\ndialogue: {out / 'dialogue.json'}")
        print("\n".join(notes))
        print(f"demo finished in {time.monotonic() - started + prepared:.0f} s ({prepared:.0f} s preparing the "
              "adapter)")
        return 0
    finally:
        stack.stop()


def generate_base(address: str, event: events_pb2.ImageSetSubmitted,
                  results: list[events_pb2.DialogueGenerated]) -> None:
    """The same request on the base model (GeneratorService.Generate with adapter "base"), appended to `results`;
    a refusal is one line on the console (the tuned request on the bus reports it too)."""
    request = events_pb2.ImageSetSubmitted()
    request.CopyFrom(event)
    request.adapter = "base"
    request.image_set_id = f"{event.image_set_id}-base"
    try:
        with grpc.insecure_channel(address) as channel:
            stub = generator_pb2_grpc.GeneratorServiceStub(channel)
            results.append(stub.Generate(generator_pb2.GenerateRequest(image_set=request), timeout=600).result)
    except grpc.RpcError as exc:
        print(f"base model: {exc.code().name}: {exc.details()}", flush=True)


def render_audio(dialogue: events_pb2.DialogueGenerated, event: events_pb2.ImageSetSubmitted, out: Path) -> str:
    """The podcast as audio (out/podcast.opus, one voice per speaker) and its player for the report; "" when
    rendering fails (the reason is printed)."""
    started = time.monotonic()
    try:
        player = podcast_player(dialogue.dialogue, out, list(event.images))
    except Exception as exc:  # the report is still written without audio
        print(f"audio: not rendered: {type(exc).__name__}: {exc}", flush=True)
        return ""
    print(f"audio: {out / 'podcast.opus'} rendered in {time.monotonic() - started:.0f} s", flush=True)
    return player


def perception_json(facts: common_pb2.Perception) -> dict[str, object]:
    def box(b: common_pb2.Box) -> list[float]:
        return [round(b.x_min, 4), round(b.y_min, 4), round(b.x_max, 4), round(b.y_max, 4)]

    return {"objects": [{"label": o.label, "score": round(o.score, 4), "box": box(o.box)} for o in facts.objects],
            "text": [{"text": t.text, "score": round(t.score, 4), "box": box(t.box)} for t in facts.text],
            "labels": [{"label": lab.label, "score": round(lab.score, 4)} for lab in facts.labels],
            "models": [{"task": m.task, "name": m.name, "weights_sha256": m.weights_sha256,
                        "random_weights": m.random_weights} for m in facts.models]}


def perception_statement(dialogue: events_pb2.DialogueGenerated) -> str:
    """The console's line on what perception ran and found."""
    models = list(dict.fromkeys(f"{m.name} ({m.task})" for ref in dialogue.images for m in ref.perception.models))
    if not models:
        return "perception: none ran (the model read " + (
            "the pixels)" if dialogue.input_mode == events_pb2.INPUT_MODE_PIXELS else "captions only)")
    found = [", ".join(list(dict.fromkeys(o.label for o in ref.perception.objects))[:4]) or "nothing"
             for ref in dialogue.images]
    return (f"perception (real weights): {', '.join(models)}\n"
            + "\n".join(f"  photo {i + 1}: {f}" for i, f in enumerate(found)))


def objects_discussed(dialogue: events_pb2.DialogueGenerated) -> list[tuple[list[str], list[str]]]:
    """Per photo: the object labels perception detected, and those its scene's turns name (a synonym or a kind
    counts: "puppy" names a detected dog)."""
    out = []
    for i, ref in enumerate(dialogue.images):
        detected = list(dict.fromkeys(o.label for o in ref.perception.objects))
        said = " ".join(t.text for t in dialogue.dialogue.turns if i in t.image_refs)
        named = {coco_category(term) for term in concrete_nouns(said)}
        out.append((detected, [label for label in detected if label in named]))
    return out


def discussed_statement(dialogue: events_pb2.DialogueGenerated) -> str:
    rows = objects_discussed(dialogue)
    with_objects = [(d, n) for d, n in rows if d]
    if not with_objects:
        return "objects discussed: perception found no objects to discuss"
    named = sum(1 for _, n in with_objects if n)
    lines = [f"objects discussed: {named} of {len(with_objects)} photos with detected objects have them named in "
             "their scene's turns"]
    lines += [f"  photo {i + 1}: detected {', '.join(d) or 'nothing'}; named {', '.join(n) or 'none'}"
              for i, (d, n) in enumerate(rows)]
    return "\n".join(lines)


def write_dialogue_json(path: Path, dialogue: events_pb2.DialogueGenerated) -> Path:
    doc = {"turns": [{"speaker": t.speaker, "text": t.text, "image_refs": list(t.image_refs)}
                     for t in dialogue.dialogue.turns],
           "images": [{"ref": ref.uri, "caption": ref.caption or None,
                       "perception": perception_json(ref.perception) if ref.perception.models else None}
                      for ref in dialogue.images],
           "system": dialogue.system or dialogue.model, "adapter": dialogue.adapter_id,
           "model": dialogue.model, "random_weights": dialogue.random_weights,
           "input": events_pb2.InputMode.Name(dialogue.input_mode).removeprefix("INPUT_MODE_").lower()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def write_report(out: Path, story: Path, event: events_pb2.ImageSetSubmitted, dialogue: events_pb2.DialogueGenerated,
                 metrics: events_pb2.MetricsComputed | None, notes: list[str],
                 compared: events_pb2.DialogueGenerated | None, audio_html: str = "") -> Path:
    # deferred: the devkit CLI registers `demo` at every `vispod` start; the report pulls matplotlib (~0.7 s)
    from vispod.evaluation.story_report import render_story_report

    images = [Path(unquote(urlparse(ref.uri).path)) for ref in event.images]
    captions = [ref.caption for ref in event.images]
    return render_story_report(out / "report.html", story, images, captions, dialogue, metrics, None, notes,
                               compared_with=compared, audio_html=audio_html)


def models_statement(dialogue: events_pb2.DialogueGenerated, metrics: events_pb2.MetricsComputed | None,
                     adapter_note: str = "") -> str:
    lines = ["Which models were real:"]
    weights = "RANDOM weights" if dialogue.random_weights else "real weights"
    seen = seen_note(dialogue).removeprefix("The model ").rstrip(".")
    adapter = f" + LoRA adapter {dialogue.adapter_id}" if dialogue.adapter_id else " (base model)"
    lines.append(f"- dialogue: {dialogue.model}{adapter} ({weights}), backend {dialogue.backend}, {seen}")
    if adapter_note:
        lines.append(f"- adapter: {adapter_note}")
    if metrics is not None:
        g = metrics.grounding
        lines.append(f"- grounding: {g.clip_model or 'CLIP'} with "
                     + ("RANDOM weights — the CLIPScore numbers measure nothing" if g.random_weights
                        else "real weights"))
    lines.append("- judge: none (no capable judge exists offline; configure one for win rates)")
    return "\n".join(lines)
