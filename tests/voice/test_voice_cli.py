"""`vispod speak`: a dialogue file in, a podcast file out, the duration and each speaker's voice printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

VISPOD = [sys.executable, "-c", "import sys; from vispod.common.cli import main; sys.exit(main())"]


def speak(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VISPOD, "speak", *args], capture_output=True, text=True, timeout=180)


def test_speak_dialogue_json_to_opus(tmp_path: Path) -> None:
    source = tmp_path / "dialogue.json"
    source.write_text(json.dumps({"turns": [
        {"speaker": "Alex", "text": "Here is the harbor at dawn.", "image_refs": [0]},
        {"speaker": "Sam", "text": "And here the old church.", "image_refs": [1]},
        {"speaker": "Kim", "text": "Lovely.", "image_refs": []}]}))
    out = tmp_path / "podcast.opus"
    proc = speak(str(source), "--out", str(out), "--voice", "Kim=joe-high")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{out}: ") and "3 turns" in lines[0] and "-16.0 LUFS" in lines[0]
    assert lines[1:4] == ["  Alex: joe-deep (piper)", "  Sam: joe-bright (piper)", "  Kim: joe-high (piper)"]
    assert "Photo 2" in lines[5]
    duration = float(lines[0].split(": ")[1].split(" s,")[0])
    assert sf.info(str(out)).duration == pytest.approx(duration, abs=0.1)


def test_speak_transcript_with_espeak_to_wav_and_errors(tmp_path: Path) -> None:
    source = tmp_path / "story.txt"
    source.write_text("Speaker 1: Hello there.\nSpeaker 2: Hi!\n")
    out = tmp_path / "story.wav"
    proc = speak(str(source), "--out", str(out), "--engine", "espeak")
    assert proc.returncode == 0, proc.stderr
    assert "  Speaker 1: en-us+m3 (espeak)" in proc.stdout and sf.info(str(out)).samplerate == 24000
    proc = speak(str(source), "--out", str(out), "--voice", "Speaker 1=nobody")
    assert proc.returncode == 1 and "unknown voice 'nobody' for speaker 'Speaker 1'" in proc.stderr
    (tmp_path / "empty.txt").write_text("\n")
    proc = speak(str(tmp_path / "empty.txt"), "--out", str(out))
    assert proc.returncode == 1 and "empty dialogue" in proc.stderr
    assert speak(str(source), "--out", str(tmp_path / "x.mp3")).returncode == 2
