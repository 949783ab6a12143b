"""The issue's targets on the real Piper voice: whisper-base hears the words, two speakers differ in pitch,
the podcast sits at -16 LUFS in both formats, chapters follow the photos."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from conftest import EXCERPT, excerpt_dialogue
from voice_measure import mean_f0, wer

from vispod.voice.engines.piper import PiperEngine
from vispod.voice.podcast import Podcaster
from vispod.voice.render import Rendered
from vispod.voice.settings import VoiceSettings


@pytest.fixture(scope="module")
def rendered(piper: PiperEngine, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    folder = tmp_path_factory.mktemp("podcast")
    podcaster = Podcaster(piper, VoiceSettings(artifact_root=folder, consume=False))
    return podcaster.render_to(podcaster.plan(excerpt_dialogue()), folder / "out", title="story 48269")


def opus_comments(path: Path) -> list[str]:
    """The user comments of an Ogg Opus file's OpusTags header (RFC 7845 section 5.2)."""
    data = path.read_bytes()[:65536]
    at = data.index(b"OpusTags") + 8
    (vendor,) = struct.unpack_from("<I", data, at)
    at += 4 + vendor
    (count,) = struct.unpack_from("<I", data, at)
    at += 4
    out = []
    for _ in range(count):
        (size,) = struct.unpack_from("<I", data, at)
        out.append(data[at + 4:at + 4 + size].decode())
        at += 4 + size
    return out


def test_round_trip_word_error_rate(rendered: Rendered, whisper) -> None:  # type: ignore[no-untyped-def]
    reference = " ".join(text for _, text, _ in EXCERPT)
    for path in (rendered.wav, rendered.opus):
        segments, _ = whisper.transcribe(str(path), language="en", beam_size=1, condition_on_previous_text=False)
        heard = " ".join(s.text for s in segments)
        rate = wer(reference, heard)
        print(f"WER {path.suffix}: {rate:.3f} — {heard}")
        assert rate <= 0.15, f"{path.name}: WER {rate:.2f}\nheard: {heard}"


def test_two_speakers_differ_in_pitch(rendered: Rendered) -> None:
    audio, rate = sf.read(rendered.wav, dtype="float32")
    by_speaker: dict[str, list[np.ndarray]] = {}
    for t in rendered.timings:
        by_speaker.setdefault(t.turn.speaker, []).append(audio[int(t.start * rate):int(t.end * rate)])
    f0 = {s: mean_f0(np.concatenate(parts), rate) for s, parts in by_speaker.items()}
    low, high = sorted(f0.values())
    print(f"mean F0: {f0}, ratio {high / low:.3f}")
    assert low > 60 and high < 400
    assert high / low >= 1.20, f0


def test_loudness_is_the_podcast_norm(rendered: Rendered) -> None:
    assert rendered.loudness_lufs == pytest.approx(-16.0, abs=0.2)  # our own meter, on what was written
    for path in (rendered.wav, rendered.opus):
        audio, rate = sf.read(path, dtype="float64")
        measured = pyloudnorm.Meter(rate).integrated_loudness(audio)  # an independent BS.1770 implementation
        print(f"{path.suffix}: {measured:.2f} LUFS at {rate} Hz, peak {np.abs(audio).max():.3f}")
        assert measured == pytest.approx(-16.0, abs=1.0), path.name
    wav, _ = sf.read(rendered.wav, dtype="float64")
    assert np.abs(wav).max() < 1.0  # the soft limiter above -1 dBFS: never clipped (decoded Opus may overshoot)


def test_timeline_pauses_and_chapters(rendered: Rendered) -> None:
    timings = rendered.timings
    assert [t.turn.speaker for t in timings] == [s for s, _, _ in EXCERPT]
    assert timings[0].start == 0.0
    for before, after in itertools.pairwise(timings):
        assert after.start - before.end == pytest.approx(0.35, abs=1e-6)
    assert timings[-1].end == pytest.approx(rendered.duration, abs=0.01)
    info = sf.info(str(rendered.wav))
    assert (info.samplerate, info.channels, info.subtype) == (24000, 1, "PCM_16")
    assert info.duration == pytest.approx(rendered.duration, abs=0.01)
    assert sf.info(str(rendered.opus)).duration == pytest.approx(rendered.duration, abs=0.1)
    # Photo 1 from turn 0, photo 2 from turn 2, photo 3 from turn 3.
    assert [(i, s) for i, _, s in rendered.chapters] == [(0, 0.0), (1, timings[2].start), (2, timings[3].start)]
    comments = opus_comments(rendered.opus)
    assert "CHAPTER001=00:00:00.000" in comments and "CHAPTER001NAME=Photo 1" in comments
    start = timings[3].start
    assert f"CHAPTER003=00:00:{int(start):02d}.{round(start * 1000) % 1000:03d}" in comments
    assert "title=story 48269" in comments
