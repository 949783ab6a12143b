"""The voice service end to end: gRPC Render and StreamRender, refusals, the Kafka flow on the real broker."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
from conftest import excerpt_dialogue
from service_fixtures import grpc_stub, running

from vispod.common.bus import EventPublisher, EventReader, read_events
from vispod.common.service import ServiceHandle
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic, dlq_topic, topic_name
from vispod.v1 import common_pb2, events_pb2, voice_pb2, voice_pb2_grpc
from vispod.voice.engines.piper import PiperEngine
from vispod.voice.service import build
from vispod.voice.settings import VoiceSettings

SHORT = common_pb2.Dialogue(text="Alex: Look at the harbor.\nSam: The boats are coming home.")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("voice-artifacts")


@pytest.fixture(scope="module")
def service(module_kafka: KafkaSettings, piper: PiperEngine, artifacts: Path) -> Iterator[ServiceHandle]:
    settings = VoiceSettings(grpc_port=0, metrics_port=0, shutdown_grace_s=2, kafka=module_kafka,
                             artifact_root=artifacts, max_chars=2_000, max_turns=20)
    yield from running(build(settings, piper).start())


@pytest.fixture(scope="module")
def stub(service: ServiceHandle) -> Iterator[voice_pb2_grpc.VoiceServiceStub]:
    yield from grpc_stub(service, voice_pb2_grpc.VoiceServiceStub)


def local_path(uri: str) -> Path:
    parsed = urllib.parse.urlparse(uri)
    assert parsed.scheme == "file", uri
    return Path(urllib.parse.unquote(parsed.path))


def test_render_stores_opus_and_wav(stub: voice_pb2_grpc.VoiceServiceStub, artifacts: Path) -> None:
    generated = events_pb2.DialogueGenerated(image_set_id="set-1", dialogue=excerpt_dialogue(), correlation_id="c-1",
                                             system="tiny-test", labels={"run": "t"},
                                             images=[common_pb2.ImageRef(caption="an old white bus")])
    reply = stub.Render(voice_pb2.RenderRequest(generated=generated, voices={"Speaker 2": "joe-high"}), timeout=120)
    p = reply.podcast  # the PodcastRendered the Kafka path publishes: the event's ids, system and labels carried over
    assert (p.image_set_id, p.correlation_id, p.engine, p.sample_rate) == ("set-1", "c-1", "piper", 24000)
    assert (p.system, dict(p.labels)) == ("tiny-test", {"run": "t"})
    assert {(v.speaker, v.voice) for v in p.voices} == {("Speaker 1", "joe-deep"), ("Speaker 2", "joe-high")}
    assert [t.index for t in p.turns] == [0, 1, 2, 3] and p.turns[-1].end_seconds == pytest.approx(p.duration_seconds,
                                                                                                    abs=0.01)
    assert [(c.image_index, c.title) for c in p.chapters] == [(0, "Photo 1: an old white bus"), (1, "Photo 2"),
                                                              (2, "Photo 3")]
    assert p.loudness_lufs == pytest.approx(-16.0, abs=0.5)
    opus, wav = local_path(p.artifact_uri), local_path(p.wav_uri)
    assert opus.suffix == ".opus" and wav.suffix == ".wav"
    assert opus.is_relative_to(artifacts) and wav.is_relative_to(artifacts)
    assert sf.info(str(wav)).duration == pytest.approx(p.duration_seconds, abs=0.01)
    assert opus.read_bytes()[:4] == b"OggS" and b"OpusHead" in opus.read_bytes()[:100]


def _request(dialogue: common_pb2.Dialogue, voices: dict[str, str] | None = None) -> voice_pb2.RenderRequest:
    return voice_pb2.RenderRequest(generated=events_pb2.DialogueGenerated(dialogue=dialogue), voices=voices)


def test_stream_yields_turn_by_turn(stub: voice_pb2_grpc.VoiceServiceStub) -> None:
    started = time.monotonic()
    arrivals, chunks = [], []
    for chunk in stub.StreamRender(_request(excerpt_dialogue()), timeout=120):
        arrivals.append(time.monotonic() - started)
        chunks.append(chunk)
    assert [c.timing.index for c in chunks] == [0, 1, 2, 3]
    assert [c.voice for c in chunks] == ["joe-deep", "joe-bright", "joe-deep", "joe-bright"]
    for c in chunks:
        samples = np.frombuffer(c.pcm_s16le, dtype="<i2")
        assert c.sample_rate == 24000
        assert len(samples) == pytest.approx((c.timing.end_seconds - c.timing.start_seconds) * 24000, abs=1)
        assert np.abs(samples).max() > 3000  # speech, not silence
    assert chunks[1].timing.start_seconds == pytest.approx(chunks[0].timing.end_seconds + 0.35)
    assert arrivals[0] < arrivals[-1] * 0.6, f"the first turn should arrive well before the end: {arrivals}"


@pytest.mark.parametrize(("request_kw", "reason"), [
    ({"dialogue": common_pb2.Dialogue(text="  \n ")}, "empty dialogue"),
    ({"dialogue": common_pb2.Dialogue(turns=[common_pb2.Turn(speaker="A", text="")])}, "empty dialogue"),
    ({"dialogue": SHORT, "voices": {"Alex": "morgan-freeman"}}, "unknown voice 'morgan-freeman' for speaker 'Alex'"),
    ({"dialogue": SHORT, "voices": {"Nobody": "joe"}}, "speakers not in the dialogue"),
    ({"dialogue": common_pb2.Dialogue(text="A: " + "word " * 500)}, "dialogue too long: 2499 characters"),
    ({"dialogue": common_pb2.Dialogue(text="\n".join(f"S{i % 2}: Hi." for i in range(21)))}, "21 turns"),
    ({"dialogue": common_pb2.Dialogue(text="\n".join(f"S{i}: Hello." for i in range(5)))}, "5 speakers but only 4"),
], ids=["blank", "empty-turns", "unknown-voice", "unknown-speaker", "too-long", "too-many-turns", "too-many-speakers"])
def test_bad_requests_are_invalid_argument(stub: voice_pb2_grpc.VoiceServiceStub, request_kw: dict,
                                           reason: str) -> None:
    for call in (stub.Render, lambda r, timeout: list(stub.StreamRender(r, timeout=timeout))):
        with pytest.raises(grpc.RpcError) as err:
            call(_request(**request_kw), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason in err.value.details(), err.value.details()


def _generated(set_id: str, **kw: object) -> events_pb2.DialogueGenerated:
    base: dict[str, object] = dict(image_set_id=set_id, correlation_id=f"c-{set_id}", status=common_pb2.STATUS_OK,
                                   dialogue=SHORT, system="tiny-test", labels={"run": "t"},
                                   images=[common_pb2.ImageRef(uri="file:///x/1.jpg", caption="the harbor at dawn")])
    base.update(kw)
    return events_pb2.DialogueGenerated(**base)


def test_kafka_flow_with_refusals(service: ServiceHandle, module_kafka: KafkaSettings) -> None:
    turns = [common_pb2.Turn(speaker="Alex", text="Look at the harbor.", image_refs=[0]),
             common_pb2.Turn(speaker="Sam", text="The boats are coming home.")]
    pub = EventPublisher(module_kafka, "test")
    try:
        pub.publish(Topic.DIALOGUE_GENERATED, _generated("failed", status=common_pb2.STATUS_FAILED, error="x",
                                                         dialogue=common_pb2.Dialogue()))
        pub.publish(Topic.DIALOGUE_GENERATED, _generated("empty", dialogue=common_pb2.Dialogue()))
        pub.publish(Topic.DIALOGUE_GENERATED, _generated("bad-voice", labels={"voice.Sam": "nobody"}))
        pub.publish(Topic.DIALOGUE_GENERATED, _generated("long", dialogue=common_pb2.Dialogue(
            text="A: " + "word " * 500)))
        pub.send_raw(topic_name(Topic.DIALOGUE_GENERATED, module_kafka.topic_prefix), b"\x00garbage", [])
        pub.publish(Topic.DIALOGUE_GENERATED, _generated(
            "good", dialogue=common_pb2.Dialogue(turns=turns), labels={"run": "t", "voice.Sam": "joe"}))
    finally:
        pub.close()

    reader = EventReader(module_kafka, [Topic.PODCAST_RENDERED])
    try:
        rendered = reader.read(1, timeout=90)
        # "good" came last on one partition: everything before it is handled, so nothing more can come.
        rendered += reader.read(1, timeout=1)
    finally:
        reader.close()
    assert [env.message.image_set_id for env in rendered] == ["good"]
    good = rendered[0].message
    assert (good.correlation_id, good.system, dict(good.labels)) == ("c-good", "tiny-test",
                                                                       {"run": "t", "voice.Sam": "joe"})
    assert {(v.speaker, v.voice) for v in good.voices} == {("Alex", "joe-deep"), ("Sam", "joe")}
    assert [(c.image_index, c.title, c.start_seconds) for c in good.chapters] == [(0, "Photo 1: the harbor at dawn",
                                                                                    0.0)]
    assert local_path(good.artifact_uri).is_file() and good.duration_seconds > 1.5

    letters = read_events(module_kafka, [dlq_topic("voice", module_kafka.topic_prefix)], 4, timeout=60)
    errors = sorted(env.message.error for env in letters)
    assert len(errors) == 4, errors
    assert any(e.startswith("empty dialogue") for e in errors)
    assert any("unknown voice 'nobody' for speaker 'Sam'" in e for e in errors)
    assert any("dialogue too long" in e for e in errors)
    assert sum("cannot decode" in e or "unknown ce_type" in e for e in errors) == 1

    with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert 'vispod_voice_renders_total{path="kafka",result="ok"} 1.0' in text
    assert 'vispod_voice_renders_total{path="kafka",result="invalid"} 3.0' in text
    assert "vispod_voice_skipped_dialogues_total 1.0" in text
    assert 'vispod_voice_real_time_factor_ratio_count{engine="piper"}' in text
    assert "vispod_voice_first_audio_seconds_count" in text


def test_python_m_vispod_voice_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "VISPOD_VOICE_ENGINE": "espeak", "VISPOD_VOICE_CONSUME": "false",
           "VISPOD_VOICE_GRPC_PORT": "0", "VISPOD_VOICE_METRICS_PORT": "0",
           "VISPOD_VOICE_ARTIFACT_ROOT": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "vispod.voice"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = ""
        for _ in range(50):  # JSON log lines come first
            line = proc.stdout.readline()
            if not line or line.startswith("voice: grpc 127.0.0.1:"):
                break
        assert line.startswith("voice: grpc 127.0.0.1:"), (line, proc.poll())
        port = int(line.split()[2].split(":")[1])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = voice_pb2_grpc.VoiceServiceStub(channel).Render(_request(SHORT), timeout=60)
        assert {v.voice for v in reply.podcast.voices} == {"en-us+m3", "en-us+f3"}
        assert local_path(reply.podcast.artifact_uri).is_relative_to(tmp_path)
        proc.terminate()
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    bad = subprocess.run([sys.executable, "-m", "vispod.voice"], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "VISPOD_VOICE_PIPER_MODEL": str(tmp_path / "none.onnx")})
    assert bad.returncode != 0 and "VISPOD_VOICE_PIPER_MODEL: " in bad.stderr
