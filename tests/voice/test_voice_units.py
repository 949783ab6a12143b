"""The pure parts: BS.1770 loudness in a stream, text chunks, transcripts, voice assignment, chapter stamps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest

from vispod.v1 import common_pb2
from vispod.voice.audio import soft_limit
from vispod.voice.dialogue import DialogueError, Limits, assign_voices, load_dialogue_file, parse_transcript, plan
from vispod.voice.encode import chapter_comments, timestamp
from vispod.voice.loudness import LoudnessMeter, _k_weighting, integrated_loudness
from vispod.voice.text import chunks

LIMITS = Limits(max_chars=1000, max_turns=10, max_turn_chars=300)


@pytest.mark.parametrize("rate", [24000, 48000, 22050])
def test_loudness_matches_pyloudnorm_and_streams(rate: int) -> None:
    rng = np.random.default_rng(rate)
    t = np.arange(rate * 6) / rate
    # Speech-like: a tone bursting on and off over noise, with a quiet stretch the gates must drop.
    signal = 0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0) + 0.02 * rng.normal(size=len(t))
    signal[rate * 4:rate * 5] *= 0.001
    reference = pyloudnorm.Meter(rate).integrated_loudness(signal)
    # pyloudnorm approximates the K-weighting filters (0.04-0.09 LU apart on white noise); ours are exact at 48 kHz.
    assert integrated_loudness(signal, rate) == pytest.approx(reference, abs=0.15)
    meter = LoudnessMeter(rate)
    for piece in np.array_split(signal, 37):  # odd piece sizes: state carried across calls
        meter.add(piece)
    assert meter.integrated() == pytest.approx(integrated_loudness(signal, rate), abs=1e-9)
    assert integrated_loudness(np.zeros(rate), rate) == -np.inf


def test_k_weighting_is_the_standard_at_48k() -> None:
    (shelf_b, shelf_a), (hp_b, hp_a) = _k_weighting(48000)
    # ITU-R BS.1770-4, table 1 and table 2.
    assert shelf_b == pytest.approx([1.53512485958697, -2.69169618940638, 1.19839281085285], abs=1e-9)
    assert shelf_a == pytest.approx([1.0, -1.69065929318241, 0.73248077421585], abs=1e-9)
    assert hp_b == pytest.approx([1.0, -2.0, 1.0]) and hp_a == pytest.approx([1.0, -1.99004745483398,
                                                                              0.99007225036621], abs=1e-9)


def test_soft_limit_only_bends_peaks() -> None:
    x = np.array([0.1, -0.5, 0.89, 0.95, -2.0, 5.0])
    y = soft_limit(x)
    assert np.array_equal(y[:3], x[:3]) and np.all(np.abs(y) <= 1.0) and y[3] > 0.89 and y[4] < -0.89


def test_chunks_are_bounded_sentences() -> None:
    text = "First sentence here. Second one? " + "very " * 120 + "long. End!"
    out = chunks(text, 100)
    assert out[0] == "First sentence here. Second one?"
    assert all(len(c) <= 101 for c in out) and out[-1].endswith("End!")
    assert " ".join(out).replace(",", "").split() == text.split()


def test_transcript_and_dialogue_json(tmp_path: Path) -> None:
    turns = parse_transcript("intro line\n**Alex:** Hello there.\n\ncontinued here\nDr. Sam: Hi: yes.")
    assert [(t.speaker, t.text) for t in turns] == [("Narrator", "intro line"), ("Alex", "Hello there. continued here"),
                                                    ("Dr. Sam", "Hi: yes.")]
    path = tmp_path / "dialogue.json"
    path.write_text(json.dumps({"turns": [{"speaker": "A", "text": "Hi.", "image_refs": [0, 2]}]}))
    assert load_dialogue_file(path).turns[0].image_refs == [0, 2]
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(DialogueError, match="expected"):
        load_dialogue_file(path)


def test_voice_assignment_is_stable_and_checked() -> None:
    voices = ["a", "b", "c"]
    assert assign_voices(["X", "Y", "X", "Z"], voices, {}) == {"X": "a", "Y": "b", "Z": "c"}
    assert assign_voices(["X", "Y"], voices, {"X": "b"}) == {"X": "b", "Y": "a"}
    with pytest.raises(DialogueError, match="unknown voice 'q' for speaker 'X'; known: \\['a', 'b', 'c'\\]"):
        assign_voices(["X"], voices, {"X": "q"})
    with pytest.raises(DialogueError, match="4 speakers but only 3 voices"):
        assign_voices(["W", "X", "Y", "Z"], voices, {})


def test_plan_limits_and_chapter_titles() -> None:
    dialogue = common_pb2.Dialogue(turns=[common_pb2.Turn(speaker="A", text="Look [laughs] at *this*.", image_refs=[1]),
                                          common_pb2.Turn(speaker="", text="   "),
                                          common_pb2.Turn(speaker="B", text="Nice.", image_refs=[1, 0])])
    images = [common_pb2.ImageRef(caption="a dog"), common_pb2.ImageRef(caption="")]
    p = plan(dialogue, ["v1", "v2"], {}, LIMITS, images)
    assert [(t.index, t.speaker, t.text) for t in p.turns] == [(0, "A", "Look at this."), (1, "B", "Nice.")]
    assert p.image_titles == {1: "Photo 2", 0: "Photo 1: a dog"}
    with pytest.raises(DialogueError, match="turn 0 has 301 characters, over the limit of 300"):
        plan(common_pb2.Dialogue(text="A: " + "x" * 301), ["v"], {}, LIMITS)


def test_chapter_comments() -> None:
    assert timestamp(3723.4567) == "01:02:03.457"
    assert chapter_comments([("Photo 1", 0.0), ("Photo 2", 61.25)]) == [
        "CHAPTER001=00:00:00.000", "CHAPTER001NAME=Photo 1", "CHAPTER002=00:01:01.250", "CHAPTER002NAME=Photo 2"]


def test_audio_player_marks_each_turn_with_its_times() -> None:
    from vispod.v1 import events_pb2
    from vispod.voice.player import audio_player_html

    podcast = events_pb2.PodcastRendered(
        turns=[events_pb2.TurnTiming(index=0, speaker="Alex", start_seconds=0, end_seconds=2.5),
               events_pb2.TurnTiming(index=1, speaker="Sam <b>", start_seconds=2.85, end_seconds=4)],
        voices=[events_pb2.SpeakerVoice(speaker="Alex", voice="joe-deep")],
        chapters=[events_pb2.Chapter(image_index=0, title="Photo 1", start_seconds=0)])
    page = audio_player_html(podcast, "podcast.opus", ["Hello & welcome.", "Hi."])
    assert '<audio controls preload="metadata" src="podcast.opus"></audio>' in page
    assert '<li data-start="0.000" data-end="2.500" title="Alex (joe-deep), 0.0-2.5 s">' in page
    assert "Hello &amp; welcome." in page and "Sam &lt;b&gt;" in page
    assert "timeupdate" in page and "Photo 1 (0 s)" in page


def test_podcast_player_renders_next_to_the_page(tmp_path: Path) -> None:
    from vispod.voice.player import podcast_player
    from vispod.voice.settings import VoiceSettings

    dialogue = common_pb2.Dialogue(turns=[common_pb2.Turn(speaker="Alex", text="Look at this.", image_refs=[0]),
                                          common_pb2.Turn(speaker="Sam", text="Lovely.")])
    page = podcast_player(dialogue, tmp_path, [common_pb2.ImageRef(caption="a dog")],
                          VoiceSettings(engine="espeak", consume=False))
    assert (tmp_path / "podcast.opus").read_bytes()[:4] == b"OggS"
    assert 'src="podcast.opus"' in page and "Look at this." in page and "Photo 1: a dog (0 s)" in page
    assert page.count("<li data-start=") == 3  # two turns, one chapter
