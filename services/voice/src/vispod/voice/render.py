"""Rendering a plan: turn by turn through the engine, levelled, with pauses; then the finished files.

`turns()` yields each turn's audio, in order, as soon as it is synthesised (the streaming call uses it alone);
with `synthesis_workers` > 1 the next turns are synthesised meanwhile, at most that many at once.
`render()` appends those turns to a raw float file on disk while a loudness meter runs, then reads it
back in blocks with one final gain to the target, writing WAV and Opus: memory stays bounded by one
turn (itself bounded by max_turn_chars, synthesised in chunks of max_chunk_chars).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vispod.voice import metrics
from vispod.voice.audio import SAMPLE_RATE, silence, soft_limit
from vispod.voice.dialogue import Plan, PlannedTurn
from vispod.voice.encode import PodcastWriter
from vispod.voice.engines import Engine
from vispod.voice.loudness import LoudnessMeter, gain_to
from vispod.voice.settings import VoiceSettings
from vispod.voice.text import chunks

CHUNK_GAP_S = 0.12  # between sentence groups inside one turn
_BLOCK = SAMPLE_RATE * 10


@dataclass(frozen=True)
class TurnAudio:
    turn: PlannedTurn
    voice: str
    audio: np.ndarray
    start: float
    end: float


@dataclass(frozen=True)
class Timing:
    turn: PlannedTurn
    voice: str
    start: float
    end: float


@dataclass(frozen=True)
class Rendered:
    wav: Path
    opus: Path
    duration: float
    loudness_lufs: float
    timings: list[Timing]
    # (image index, title, start seconds), in time order.
    chapters: list[tuple[int, str, float]]
    synthesis_seconds: float


class Renderer:
    def __init__(self, engine: Engine, settings: VoiceSettings) -> None:
        self.engine = engine
        self.settings = settings

    def turns(self, plan: Plan) -> Iterator[TurnAudio]:
        start = 0.0
        workers = self.settings.synthesis_workers
        todo = iter(plan.turns)
        with ThreadPoolExecutor(workers, thread_name_prefix="voice-synth") as pool:
            ahead: deque[Future[tuple[PlannedTurn, str, np.ndarray]]] = deque()

            def submit_next() -> None:
                turn = next(todo, None)
                if turn is not None:
                    ahead.append(pool.submit(self._synthesize, turn, plan.voices[turn.speaker]))

            for _ in range(workers):
                submit_next()
            while ahead:
                turn, voice, audio = ahead.popleft().result()
                submit_next()
                seconds = len(audio) / SAMPLE_RATE
                yield TurnAudio(turn, voice, audio, start, start + seconds)
                start += seconds + self.settings.pause_s

    def _synthesize(self, turn: PlannedTurn, voice: str) -> tuple[PlannedTurn, str, np.ndarray]:
        started = time.monotonic()
        pieces: list[np.ndarray] = []
        for chunk in chunks(turn.text, self.settings.max_chunk_chars):
            if pieces:
                pieces.append(silence(CHUNK_GAP_S))
            pieces.append(self.engine.synthesize(chunk, voice))
        audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        # Each turn levelled to the target: speakers sound equally loud, streamed audio is already right.
        audio = soft_limit(audio * gain_to(audio, SAMPLE_RATE, self.settings.target_lufs)).astype(np.float32)
        metrics.observe_synthesis(self.engine.name, time.monotonic() - started, len(audio) / SAMPLE_RATE)
        return turn, voice, audio

    def render(self, plan: Plan, workdir: Path, title: str = "") -> Rendered:
        started = time.monotonic()
        workdir.mkdir(parents=True, exist_ok=True)
        raw = workdir / "podcast.f32"
        meter = LoudnessMeter(SAMPLE_RATE)
        timings: list[Timing] = []
        with open(raw, "wb") as fh:
            for part in self.turns(plan):
                if timings:
                    fh.write(silence(self.settings.pause_s).tobytes())
                    meter.add(silence(self.settings.pause_s))
                fh.write(part.audio.tobytes())
                meter.add(part.audio)
                timings.append(Timing(part.turn, part.voice, part.start, part.end))
        synthesis_seconds = time.monotonic() - started
        measured = meter.integrated()
        gain = 10 ** ((self.settings.target_lufs - measured) / 20) if math.isfinite(measured) else 1.0
        chapters = self._chapters(plan, timings)
        wav, opus = workdir / "podcast.wav", workdir / "podcast.opus"
        final = LoudnessMeter(SAMPLE_RATE)
        samples = 0
        with PodcastWriter(wav, opus, [(t, s) for _, t, s in chapters], title=title,
                           opusenc=self.settings.opusenc_program,
                           bitrate_kbps=self.settings.opus_bitrate_kbps,
                           complexity=self.settings.opus_complexity) as writer, open(raw, "rb") as fh:
            while block := fh.read(_BLOCK * 4):
                audio = soft_limit(np.frombuffer(block, dtype=np.float32) * gain).astype(np.float32)
                writer.write(audio)
                final.add(audio)
                samples += len(audio)
        raw.unlink()
        return Rendered(wav, opus, samples / SAMPLE_RATE, final.integrated(), timings, chapters, synthesis_seconds)

    @staticmethod
    def _chapters(plan: Plan, timings: list[Timing]) -> list[tuple[int, str, float]]:
        first: dict[int, float] = {}
        for timing in timings:
            for ref in timing.turn.image_refs:
                first.setdefault(ref, timing.start)
        return sorted(((i, plan.image_titles.get(i, f"Photo {i + 1}"), s) for i, s in first.items()),
                      key=lambda c: (c[2], c[0]))
