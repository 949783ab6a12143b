"""`vispod submit`: publish an ImageSetSubmitted for a folder and print the events that follow."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from vispod.common.bus import EventPublisher, EventReader
from vispod.common.events import Envelope
from vispod.common.settings import KafkaSettings
from vispod.common.story_folder import IMAGE_MIME, read_story
from vispod.common.topics import Topic, dlq_topic
from vispod.common.what_was_seen import seen_note
from vispod.devkit.local_stack import stack_state
from vispod.v1 import common_pb2, events_pb2


def add_image_set_arguments(p: argparse.ArgumentParser) -> None:
    """The request options every command that builds an ImageSetSubmitted takes."""
    p.add_argument("--speaker", action="append", default=[], metavar="NAME[:PERSONA]")
    p.add_argument("--target-words", type=int, default=0)
    p.add_argument("--style", default="")
    p.add_argument("--language", default="en")
    p.add_argument("--adapter", default="")
    p.add_argument("--seed", type=int, default=0)


def image_set_from_folder(folder: Path) -> tuple[str, list[common_pb2.ImageRef]]:
    """Images in story order with captions: story.json when present (VIST layout), else sorted image files."""
    story = read_story(folder.resolve())
    set_id = f"story-{story.story_id}" if story.meta else story.folder.name
    refs = [image_ref(path, caption) for path, caption in zip(story.images, story.captions, strict=True)]
    if not refs:
        raise SystemExit(f"{story.folder}: no images found")
    return set_id, refs


def image_ref(path: Path, caption: str) -> common_pb2.ImageRef:
    """A local photo as the generator reads it: file URI, caption, MIME type and sha256."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return common_pb2.ImageRef(uri=path.resolve().as_uri(), caption=caption,
                               mime_type=IMAGE_MIME.get(path.suffix.lower(), ""), sha256=digest)


def image_set_event(args: argparse.Namespace, set_id: str, refs: list[common_pb2.ImageRef],
                    tenant: str = "cli") -> events_pb2.ImageSetSubmitted:
    """The ImageSetSubmitted of `add_image_set_arguments`' options for these images."""
    speakers = []
    for spec in args.speaker:
        name, _, persona = spec.partition(":")
        speakers.append(common_pb2.Speaker(name=name.strip(), persona=persona.strip()))
    now = Timestamp()
    now.GetCurrentTime()
    return events_pb2.ImageSetSubmitted(
        image_set_id=set_id, tenant=tenant, images=refs, speakers=speakers, target_words=args.target_words,
        style_instructions=args.style, language=args.language, adapter=args.adapter,
        correlation_id=str(uuid.uuid4()), seed=args.seed, submitted_at=now,
    )


def stage_into_stack(refs: list[common_pb2.ImageRef], stack: dict) -> list[common_pb2.ImageRef]:
    """Images outside the local stack's image roots, copied into its inbox (named by their sha256) so that
    its services may read them; the refs point at the copies. Images already under a root are left alone."""
    roots = [Path(r) for r in stack.get("file_roots", [])]
    inbox = Path(stack["image_inbox"]) if stack.get("image_inbox") else None
    staged = []
    for ref in refs:
        path = Path(urllib.parse.unquote(urllib.parse.urlparse(ref.uri).path))
        if inbox is None or any(path.is_relative_to(r) for r in roots):
            staged.append(ref)
            continue
        copy = inbox / f"{ref.sha256}{path.suffix.lower()}"
        if not copy.exists():
            tmp = copy.with_name(f".{copy.name}.{uuid.uuid4().hex[:8]}")
            shutil.copyfile(path, tmp)
            tmp.replace(copy)
        moved = common_pb2.ImageRef()
        moved.CopyFrom(ref)
        moved.uri = copy.as_uri()
        staged.append(moved)
    return staged


def build_event(args: argparse.Namespace, stack: dict | None = None) -> events_pb2.ImageSetSubmitted:
    """The ImageSetSubmitted for `args.folder`; with `stack` (a running `vispod up`), photos from outside
    its image roots are staged into its inbox first."""
    set_id, refs = image_set_from_folder(args.folder)
    if stack:
        refs = stage_into_stack(refs, stack)
    return image_set_event(args, set_id, refs)


def describe(env: Envelope) -> str:
    """A readable rendering of the events that follow a submission."""
    m = env.message
    if isinstance(m, events_pb2.DialogueGenerated):
        head = (f"DialogueGenerated [{common_pb2.Status.Name(m.status)}] system={m.system or m.model} "
                f"backend={m.backend} adapter={m.adapter_id or '(base)'} "
                f"input={events_pb2.InputMode.Name(m.input_mode)} latency={m.latency_seconds:.1f}s "
                f"tokens={m.usage.completion_tokens}")
        notes = []
        if m.input_mode != events_pb2.INPUT_MODE_PIXELS:
            notes.append(f"note: {seen_note(m)}")
        if m.random_weights:
            notes.append("note: the model has RANDOM weights; the text is meaningless by design")
        if m.status == common_pb2.STATUS_FAILED:
            notes.append(f"error: {m.error}")
        turns = "\n".join(f"  {t.speaker}: {t.text}" for t in m.dialogue.turns)
        return "\n".join([head, *notes, turns])
    if isinstance(m, events_pb2.DeadLetter):
        return f"DeadLetter from {m.service} ({m.error_kind}): {m.error}"
    if isinstance(m, events_pb2.MetricsComputed):
        st, g = m.style, m.grounding
        weights = "RANDOM CLIP weights: measures nothing" if g.random_weights else "real CLIP weights"
        return (f"MetricsComputed: words={st.words} turns={st.num_turns} avg_turn_length={st.avg_turn_length:.1f} "
                f"switch_rate={st.switch_rate:.1f}/1k distinct_2={st.distinct_2:.3f} "
                f"speaker_balance={st.speaker_balance:.2f} image_mentions={st.image_mention_rate:.3f}\n"
                f"  grounding ({g.clip_model}, {weights}): clipscore={g.clipscore:.2f} "
                f"paper_clipscore={g.paper_clipscore:.2f} retrieval_accuracy={g.retrieval_accuracy:.2f}")
    body = json_format.MessageToDict(m, preserving_proto_field_name=True)
    return f"{m.DESCRIPTOR.name}: {json.dumps(body, indent=2)}"


def submit(args: argparse.Namespace, bootstrap: str) -> int:
    kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=os.environ.get("VISPOD_KAFKA_TOPIC_PREFIX", "vispod"))
    event = build_event(args, stack_state(bootstrap))
    watch = [Topic.DIALOGUE_GENERATED, Topic.METRICS_COMPUTED, Topic.JUDGEMENT_COMPLETED,
             dlq_topic("generator", kafka.topic_prefix)]
    reader = None if args.no_wait else EventReader(kafka, watch, from_beginning=False)
    publisher = EventPublisher(kafka, "cli")
    event_id = publisher.publish(Topic.IMAGESET_SUBMITTED, event)
    publisher.close()
    print(f"submitted {event.image_set_id} ({len(event.images)} images) as event {event_id}, "
          f"correlation {event.correlation_id}", flush=True)
    if reader is None:
        return 0
    try:
        return _follow(reader, event, args.timeout, args.json)
    finally:
        reader.close()


def follow(reader: EventReader, event: events_pb2.ImageSetSubmitted, timeout: float,
           on_event: Callable[[Envelope], None]) -> dict[str, Message]:
    """Collects the events that follow a submission until its dialogue and metrics arrived, a failure, or the
    timeout. Returns {"dialogue": …, "metrics": …, "dead_letter": …} for those that came."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    got: dict[str, Message] = {}

    def related(env: Envelope) -> bool:
        m = env.message
        if isinstance(m, events_pb2.DeadLetter):
            return event.correlation_id.encode() in m.payload
        return getattr(m, "correlation_id", "") == event.correlation_id

    while time.monotonic() < deadline and not ("dialogue" in got and "metrics" in got):
        for env in reader.read(1, timeout=min(5.0, max(0.1, deadline - time.monotonic())), where=related):
            if env.id in seen:
                continue
            seen.add(env.id)
            on_event(env)
            m = env.message
            if isinstance(m, events_pb2.DeadLetter):
                got["dead_letter"] = m
                return got
            if isinstance(m, events_pb2.DialogueGenerated):
                got["dialogue"] = m
                if m.status != common_pb2.STATUS_OK:
                    return got
            elif isinstance(m, events_pb2.MetricsComputed):
                got["metrics"] = m
    return got


def _follow(reader: EventReader, event: events_pb2.ImageSetSubmitted, timeout: float, as_json: bool) -> int:
    def show(env: Envelope) -> None:
        if as_json:
            print(json.dumps({"type": env.type, "id": env.id,
                              "event": json_format.MessageToDict(env.message, preserving_proto_field_name=True)}))
        else:
            print(describe(env), flush=True)

    got = follow(reader, event, timeout, show)
    dialogue = got.get("dialogue")
    if dialogue is None:
        if "dead_letter" not in got:
            print(f"no dialogue within {timeout:.0f}s (is the generator running? `vispod up`)", flush=True)
        return 1
    return 0 if dialogue.status == common_pb2.STATUS_OK else 1
