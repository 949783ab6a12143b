"""The engines behind the one interface: espeak-ng, an OpenAI-compatible speech server, Piper voices by path."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import soundfile as sf
from service_fixtures import serve_http
from voice_measure import mean_f0

from vispod.common.settings import SettingsError, load_settings
from vispod.v1 import common_pb2
from vispod.voice.engines import EngineError, build_engine
from vispod.voice.engines.espeak import EspeakEngine
from vispod.voice.engines.openai_speech import OpenAISpeechEngine
from vispod.voice.engines.piper import PiperEngine, default_model
from vispod.voice.podcast import Podcaster
from vispod.voice.settings import VoiceSettings

TEXT = "The boats are coming home after a long night at sea."


def test_espeak_voices_are_distinct_speech(voice_settings: VoiceSettings) -> None:
    engine = build_engine(voice_settings.model_copy(update={"engine": "espeak"}))
    assert engine.voices()[:2] == ["en-us+m3", "en-us+f3"]
    male, female = (engine.synthesize(TEXT, v) for v in engine.voices()[:2])
    assert 1.5 < len(male) / 24000 < 6 and np.abs(male).max() > 0.05
    assert mean_f0(female, 24000) / mean_f0(male, 24000) >= 1.2
    with pytest.raises(EngineError, match="bad espeak-ng voice"):
        EspeakEngine(["en-us; rm -rf /"])


class SpeechServer(BaseHTTPRequestHandler):
    """A small OpenAI-compatible /v1/audio/speech: a harmonic tone per voice, 44.1 kHz stereo WAV."""

    requests: ClassVar[list[dict]] = []
    failures_left = 0
    PITCH: ClassVar[dict[str, float]] = {"onyx": 110.0, "nova": 220.0}

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SpeechServer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        if SpeechServer.failures_left > 0:
            SpeechServer.failures_left -= 1
            return self._reply(503, b'{"error": "busy"}', "application/json")
        if body.get("voice") not in self.PITCH:
            return self._reply(400, b'{"error": {"message": "voice not found"}}', "application/json")
        t = np.arange(int(44100 * 0.05 * len(body["input"].split()))) / 44100
        tone = sum(np.sin(2 * np.pi * self.PITCH[body["voice"]] * k * t) / k for k in range(1, 6)) * 0.2
        out = io.BytesIO()
        sf.write(out, np.stack([tone, tone], axis=1), 44100, format="WAV", subtype="PCM_16")
        self._reply(200, out.getvalue(), "audio/wav")

    def _reply(self, code: int, payload: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def speech_server() -> Iterator[str]:
    SpeechServer.requests, SpeechServer.failures_left = [], 0
    for port in serve_http(SpeechServer):
        yield f"http://127.0.0.1:{port}/v1"


def test_openai_speech_endpoint_renders_a_podcast(speech_server: str, tmp_path: Path) -> None:
    settings = load_settings(VoiceSettings, engine="openai", openai_base_url=speech_server, openai_api_key="sk-test",
                             openai_model="tts-test", openai_voices=["onyx", "nova"], consume=False,
                             artifact_root=tmp_path)
    SpeechServer.failures_left = 1  # one 503 first: retried
    podcaster = Podcaster(build_engine(settings), settings)
    dialogue = common_pb2.Dialogue(text="Alex: Look at the harbor at dawn.\nSam: The boats are coming home now.")
    rendered = podcaster.render_to(podcaster.plan(dialogue), tmp_path / "out")
    sent = SpeechServer.requests
    assert len(sent) == 3 and sent[0] == sent[1]
    assert sent[1] == {"path": "/v1/audio/speech", "auth": "Bearer sk-test", "model": "tts-test",
                       "input": "Look at the harbor at dawn.", "voice": "onyx", "response_format": "wav"}
    assert (sent[2]["voice"], sent[2]["input"]) == ("nova", "The boats are coming home now.")
    audio, rate = sf.read(rendered.wav)
    assert rate == 24000 and rendered.loudness_lufs == pytest.approx(-16, abs=0.3)
    first, second = (audio[int(t.start * rate):int(t.end * rate)] for t in rendered.timings)
    assert mean_f0(first, rate) == pytest.approx(110, rel=0.05)
    assert mean_f0(second, rate) == pytest.approx(220, rel=0.05)


def test_openai_speech_errors_are_engine_errors(speech_server: str) -> None:
    engine = OpenAISpeechEngine(speech_server, "tts-test", ["onyx", "ghost"], max_retries=0)
    with pytest.raises(EngineError, match=r"answered 400: .*voice not found"):
        engine.synthesize(TEXT, "ghost")
    SpeechServer.failures_left = 5
    with pytest.raises(EngineError, match="answered 503"):
        OpenAISpeechEngine(speech_server, "m", ["onyx"], max_retries=1).synthesize(TEXT, "onyx")
    with pytest.raises(EngineError, match="unreachable"):
        OpenAISpeechEngine("http://127.0.0.1:9/v1", "m", ["onyx"], timeout_s=2, max_retries=0).synthesize(TEXT, "onyx")


def test_any_piper_voice_by_path(tmp_path: Path) -> None:
    model = default_model()
    for suffix in ("", ".json"):
        os.symlink(f"{model}{suffix}", tmp_path / f"en_GB-alan-low.onnx{suffix}")
    engine = build_engine(load_settings(VoiceSettings, piper_model=tmp_path / "en_GB-alan-low.onnx", consume=False))
    assert isinstance(engine, PiperEngine)
    assert engine.voices() == ["alan-deep", "alan-bright", "alan", "alan-high"]
    assert len(engine.synthesize("Hello there.", "alan")) > 0.4 * 24000
    (tmp_path / "en_GB-alan-low.onnx.json").unlink()
    with pytest.raises(EngineError, match="config missing"):
        PiperEngine(tmp_path / "en_GB-alan-low.onnx")
    with pytest.raises(SettingsError, match=r"VISPOD_VOICE_PIPER_MODEL: .*no such file"):
        load_settings(VoiceSettings, piper_model=tmp_path / "missing.onnx")


def test_piper_inputs_follow_the_voice_config(piper: PiperEngine) -> None:
    phonemes = piper.espeak.phonemes("Hello, world. How are you?")
    assert phonemes == "həlˈoʊ, wˈɜːld. hˈaʊ ɑːɹ juː?"  # espeak-ng 1.51, clause marks put back
    ids = piper.phoneme_ids("hə,")
    m = piper.id_map
    assert ids == [*m["^"], *m["_"], *m["h"], *m["_"], *m["ə"], *m["_"], *m[","], *m["_"], *m["$"]]
    # The same voice name sounds the same length every time; the presets differ.
    deep = piper.synthesize(TEXT, "joe-deep")
    assert abs(len(piper.synthesize(TEXT, "joe-deep")) - len(deep)) < 0.25 * len(deep)


def test_long_turns_are_synthesised_in_bounded_chunks(voice_settings: VoiceSettings, tmp_path: Path) -> None:
    """Every engine call gets at most MAX_CHUNK_CHARS of text; together they speak the whole turn."""
    calls: list[str] = []

    class Recording(EspeakEngine):
        def synthesize(self, text: str, voice: str) -> np.ndarray:
            calls.append(text)
            return super().synthesize(text, voice)

    settings = voice_settings.model_copy(update={"max_chunk_chars": 120})
    sentence = "The tide came in slowly over the flat grey sand while the gulls argued overhead. "
    turn = sentence * 12 + "And then " + "on and " * 40 + "on."
    podcaster = Podcaster(Recording(settings.espeak_voices), settings)
    rendered = podcaster.render_to(podcaster.plan(common_pb2.Dialogue(text=f"Alex: {turn}")), tmp_path)
    assert len(calls) >= 10 and max(len(c) for c in calls) <= 121
    assert " ".join(calls).replace(",", "").split() == turn.split()
    assert rendered.duration > 40 and rendered.loudness_lufs == pytest.approx(-16, abs=0.3)


@pytest.mark.parametrize("workers", [1, 2])
def test_turns_are_synthesised_workers_at_a_time_and_kept_in_order(workers: int, tmp_path: Path) -> None:
    """With synthesis_workers=2 two real Piper sessions speak two turns at once; the podcast keeps the order."""
    import threading

    in_flight, most = 0, 0
    lock = threading.Lock()

    class Counting(PiperEngine):
        def synthesize(self, text: str, voice: str) -> np.ndarray:
            nonlocal in_flight, most
            with lock:
                in_flight += 1
                most = max(most, in_flight)
            try:
                return super().synthesize(text, voice)
            finally:
                with lock:
                    in_flight -= 1

    settings = VoiceSettings(consume=False, synthesis_workers=workers)
    podcaster = Podcaster(Counting(sessions=workers), settings)
    dialogue = common_pb2.Dialogue(turns=[common_pb2.Turn(speaker=f"Speaker {1 + i % 2}", text=f"{TEXT} Turn {i}.")
                                          for i in range(6)])
    rendered = podcaster.render_to(podcaster.plan(dialogue), tmp_path)
    assert most == workers
    assert [t.turn.text for t in rendered.timings] == [t.text for t in dialogue.turns]
    starts = [t.start for t in rendered.timings]
    assert starts == sorted(starts) and all(t.end > t.start + 1.0 for t in rendered.timings)
