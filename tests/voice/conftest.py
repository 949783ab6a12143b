"""Fixtures of the voice tests: the real Piper voice (joe, CC0) in onnxruntime and whisper-base for round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
from voice_measure import whisper_base_dir

from vispod.v1 import common_pb2
from vispod.voice.engines.piper import PiperEngine
from vispod.voice.settings import VoiceSettings

# From the paper's transcript of VIST story 48269 (qwen3-vl-32b-sporc-lora), US spelling.
EXCERPT = [
    ("Speaker 1", "So I was looking through some old photos the other day, and I came across this one of a "
                  "totally wrecked bus. It's just sitting out in the middle of nowhere, all broken down, windows "
                  "gone, the whole thing just falling apart.", [0]),
    ("Speaker 2", "Yeah, that's a pretty bleak scene. I've seen a lot of abandoned vehicles, but that one's "
                  "especially rough. You can tell nature's slowly taking it over.", [0]),
    ("Speaker 1", "And then you look at the next photo, all those tires stacked up in a dirty room.", [1]),
    ("Speaker 2", "It's like the whole place is a museum of things nobody wanted anymore.", [1, 2]),
]


def excerpt_dialogue() -> common_pb2.Dialogue:
    return common_pb2.Dialogue(turns=[common_pb2.Turn(speaker=s, text=t, image_refs=r) for s, t, r in EXCERPT])


@pytest.fixture(scope="session")
def piper() -> PiperEngine:
    return PiperEngine(threads=2)


@pytest.fixture(scope="session")
def whisper(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from faster_whisper import WhisperModel

    return WhisperModel(str(whisper_base_dir(tmp_path_factory.mktemp("whisper-base"))), device="cpu",
                        compute_type="int8", cpu_threads=2)


@pytest.fixture
def voice_settings(tmp_path: Path) -> VoiceSettings:
    return VoiceSettings(artifact_root=tmp_path / "artifacts", grpc_port=0, metrics_port=0, consume=False)
