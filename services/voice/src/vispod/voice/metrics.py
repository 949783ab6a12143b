"""Prometheus metrics of the voice service (vispod_voice_*). Labels: engine, path, result — small fixed sets."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ENGINES = ("piper", "espeak", "openai")
PATHS = ("grpc", "stream", "kafka")
RESULTS = ("ok", "invalid", "error")

RENDERS = Counter("vispod_voice_renders_total", "Dialogues rendered, by path and result.", ["path", "result"])
SKIPPED = Counter("vispod_voice_skipped_dialogues_total", "DialogueGenerated events with status FAILED (no audio).")
SYNTHESIS_SECONDS = Histogram("vispod_voice_turn_synthesis_seconds", "Time to synthesise one turn.", ["engine"],
                              buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64))
AUDIO_SECONDS = Counter("vispod_voice_audio_seconds_total", "Seconds of speech synthesised.", ["engine"])
REAL_TIME_FACTOR = Histogram("vispod_voice_real_time_factor_ratio", "Synthesis time / audio duration, per turn.",
                             ["engine"], buckets=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5))
FIRST_AUDIO_SECONDS = Histogram("vispod_voice_first_audio_seconds", "Streamed calls: time to the first turn's audio.",
                                buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32))
PODCAST_SECONDS = Histogram("vispod_voice_podcast_duration_seconds", "Duration of rendered podcasts.",
                            buckets=(10, 30, 60, 120, 300, 600, 1200, 2400))

# Series exist from the start at zero, so rate() and increase() see the first event.
for _path in PATHS:
    for _result in RESULTS:
        RENDERS.labels(_path, _result)
for _engine in ENGINES:
    AUDIO_SECONDS.labels(_engine)


def observe_synthesis(engine: str, seconds: float, audio_seconds: float) -> None:
    SYNTHESIS_SECONDS.labels(engine).observe(seconds)
    AUDIO_SECONDS.labels(engine).inc(audio_seconds)
    if audio_seconds > 0:
        REAL_TIME_FACTOR.labels(engine).observe(seconds / audio_seconds)
