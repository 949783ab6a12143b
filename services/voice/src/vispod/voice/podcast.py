"""The one data plane: a dialogue in, a stored podcast (and its PodcastRendered description) out."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from vispod.v1 import common_pb2, events_pb2, voice_pb2
from vispod.voice import metrics
from vispod.voice.audio import SAMPLE_RATE, to_pcm16
from vispod.voice.dialogue import DialogueError, Limits, Plan, plan
from vispod.voice.engines import Engine
from vispod.voice.render import Rendered, Renderer, Timing, TurnAudio
from vispod.voice.settings import VoiceSettings


class Podcaster:
    def __init__(self, engine: Engine, settings: VoiceSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.renderer = Renderer(engine, settings)
        self.limits = Limits(settings.max_chars, settings.max_turns, settings.max_turn_chars)

    def plan(self, dialogue: common_pb2.Dialogue, voices: Mapping[str, str] | None = None,
             images: Sequence[common_pb2.ImageRef] = ()) -> Plan:
        """Raises DialogueError for anything the caller must fix."""
        return plan(dialogue, self.engine.voices(), voices or {}, self.limits, images)

    def plan_counted(self, path: str, dialogue: common_pb2.Dialogue, voices: Mapping[str, str] | None = None,
                     images: Sequence[common_pb2.ImageRef] = ()) -> Plan:
        """`plan`, counting a refusal under `path` (grpc, stream, kafka)."""
        try:
            return self.plan(dialogue, voices, images)
        except DialogueError:
            metrics.RENDERS.labels(path, "invalid").inc()
            raise

    def render_counted(self, path: str, p: Plan, image_set_id: str = "") -> events_pb2.PodcastRendered:
        """`render_stored`, counting the outcome and the podcast's length under `path`."""
        try:
            event = self.render_stored(p, image_set_id)
        except Exception:
            metrics.RENDERS.labels(path, "error").inc()
            raise
        metrics.RENDERS.labels(path, "ok").inc()
        metrics.PODCAST_SECONDS.observe(event.duration_seconds)
        return event

    def render_event(self, path: str, generated: events_pb2.DialogueGenerated,
                     voices: Mapping[str, str]) -> events_pb2.PodcastRendered:
        """The PodcastRendered of a DialogueGenerated (Kafka and gRPC alike): its dialogue rendered and stored, its
        image set, correlation id, system and labels carried over. A DialogueError is the caller's to fix."""
        p = self.plan_counted(path, generated.dialogue, voices, generated.images)
        event = self.render_counted(path, p, generated.image_set_id)
        event.correlation_id = generated.correlation_id
        event.system = generated.system
        event.labels.update(generated.labels)
        return event

    def render_to(self, p: Plan, out_dir: Path, title: str = "") -> Rendered:
        return self.renderer.render(p, out_dir, title)

    def render_stored(self, p: Plan, image_set_id: str = "") -> events_pb2.PodcastRendered:
        """Renders into the artifact store (content-addressed files) and describes the result."""
        blobs = self.settings.artifact_root / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=blobs, prefix=".voice-") as tmp:
            rendered = self.render_to(p, Path(tmp), title=image_set_id)
            opus_uri = _store(rendered.opus, blobs, ".opus")
            wav_uri = _store(rendered.wav, blobs, ".wav")
        return describe(rendered, p, self.engine.name, opus_uri, wav_uri, image_set_id)

    def stream(self, p: Plan) -> Iterator[voice_pb2.AudioChunk]:
        for part in self.renderer.turns(p):
            yield voice_pb2.AudioChunk(timing=turn_timing(part), voice=part.voice, text=part.turn.text,
                                       pcm_s16le=to_pcm16(part.audio), sample_rate=SAMPLE_RATE)


def turn_timing(t: Timing | TurnAudio) -> events_pb2.TurnTiming:
    """Where a turn sits on the podcast's timeline (a stored podcast's turns and a stream's chunks alike)."""
    return events_pb2.TurnTiming(index=t.turn.index, speaker=t.turn.speaker, start_seconds=t.start, end_seconds=t.end,
                                 image_refs=list(t.turn.image_refs))


def describe(rendered: Rendered, p: Plan, engine: str, opus_uri: str, wav_uri: str,
             image_set_id: str = "") -> events_pb2.PodcastRendered:
    when = Timestamp()
    when.GetCurrentTime()
    return events_pb2.PodcastRendered(
        image_set_id=image_set_id, artifact_uri=opus_uri, wav_uri=wav_uri, duration_seconds=rendered.duration,
        sample_rate=SAMPLE_RATE, loudness_lufs=rendered.loudness_lufs, engine=engine,
        synthesis_seconds=rendered.synthesis_seconds, rendered_at=when,
        turns=[turn_timing(t) for t in rendered.timings],
        voices=[events_pb2.SpeakerVoice(speaker=s, voice=v, engine=engine) for s, v in p.voices.items()],
        chapters=[events_pb2.Chapter(image_index=i, title=title, start_seconds=start)
                  for i, title, start in rendered.chapters],
    )


def _store(path: Path, blobs: Path, suffix: str) -> str:
    """Moves a file to blobs/<sha[:2]>/<sha><suffix> (the artifact store's layout) and returns its URI."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    name = digest.hexdigest()
    target = blobs / name[:2] / f"{name}{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        staged = target.with_name(f".tmp-{name}{suffix}")
        shutil.move(str(path), staged)
        os.replace(staged, target)
    return target.resolve().as_uri()
