"""Robust speaker-turn parsing on every label style, and the robust metrics by hand."""

from __future__ import annotations

import math

import pytest

from vispod.metrics.speaker_turns import parse_turns
from vispod.metrics.style import style_of_dialogue, style_of_text
from vispod.v1 import common_pb2


def turns_of(text: str) -> list[tuple[str, str]]:
    return [(t.speaker, t.text) for t in parse_turns(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Speaker 1: Hello there.\nSpeaker 2: Hi!\nSpeaker 1: How are you?",
         [("Speaker 1", "Hello there."), ("Speaker 2", "Hi!"), ("Speaker 1", "How are you?")]),
        ('**Podcast Transcript: "Art"**\n\n**Host 1 (Alex):** Welcome.\n\n**Host 2 (Jamie):** Thanks.\n\n'
         "**Alex:** So.\n\n**Host 2:** Indeed.\n\n**[Outro music fades in.]**",
         [("Alex", "Welcome."), ("Jamie", "Thanks."), ("Alex", "So."), ("Jamie", "Indeed.")]),
        ("**Alex**: hi\n**Sam**: hello", [("Alex", "hi"), ("Sam", "hello")]),
        ("[Jamie]: hey\n[Alex]: yo\n[Jamie]: ok then", [("Jamie", "hey"), ("Alex", "yo"), ("Jamie", "ok then")]),
        ("Dr. Mary Ann Lee: I study birds.\nJohn van der Berg: Really? Tell me more.\nDr. Mary Ann Lee: Sure.",
         [("Dr. Mary Ann Lee", "I study birds."), ("John van der Berg", "Really? Tell me more."),
          ("Dr. Mary Ann Lee", "Sure.")]),
        ("HOST: Welcome to the show.\nGUEST: Glad to be here.\nHOST: Let's begin.",
         [("HOST", "Welcome to the show."), ("GUEST", "Glad to be here."), ("HOST", "Let's begin.")]),
        ("SPEAKER_00: one two\nSPEAKER_01: three", [("SPEAKER 00", "one two"), ("SPEAKER 01", "three")]),
        ("Speaker 1:  \nYou are ridiculous.\n\nSpeaker 2:\nBut you love it.",
         [("Speaker 1", "You are ridiculous."), ("Speaker 2", "But you love it.")]),
        ("Alex (laughing): no way\nSam: way [laughs] really\nAlex: fine",
         [("Alex", "no way"), ("Sam", "way really"), ("Alex", "fine")]),
        ("[00:01] Alex: hi\n[00:05] Sam: hello\nAt 10:30 we met.", [("Alex", "hi"), ("Sam", "hello At 10:30 we met.")]),
        ("A: hi\nB: hello\nA: bye", [("A", "hi"), ("B", "hello"), ("A", "bye")]),
    ],
    ids=["speaker-n", "markdown-host-alias", "bold-colon-outside", "brackets", "full-names", "caps", "sporc",
         "label-own-line", "direction-in-parens", "timestamps", "letters"],
)
def test_label_styles(text: str, expected: list[tuple[str, str]]) -> None:
    assert turns_of(text) == expected


def test_sentence_openers_with_colons_are_speech() -> None:
    text = "Alex: Look at this.\nLook: it is fine.\nNote: more.\nSam: yes.\nAlex: ok"
    assert turns_of(text) == [("Alex", "Look at this. Look: it is fine. Note: more."), ("Sam", "yes."), ("Alex", "ok")]


def test_consecutive_segments_of_one_speaker_merge() -> None:
    assert turns_of("Speaker 1: one\nSpeaker 1: two\nSpeaker1: three\nSpeaker 2: four") == [
        ("Speaker 1", "one two three"), ("Speaker 2", "four")]


def test_unlabelled_text_is_one_unknown_turn() -> None:
    assert turns_of("Just a monologue.\nNote: with a colon.") == [("unknown", "Just a monologue. Note: with a colon.")]


def test_robust_metrics_by_hand() -> None:
    text = "Alex: Is this fine? Yes it is.\nSam: I think so.\nAlex: Look at the photo."
    r = style_of_text(text)  # robust is the default
    assert (r.words, r.num_turns, r.num_speakers) == (13, 3, 2)
    assert r.avg_turn_length == pytest.approx(13 / 3)
    assert r.switch_rate == pytest.approx(2 / 13 * 1000)
    p, q = 10 / 13, 3 / 13
    assert r.speaker_balance == pytest.approx(-(p * math.log(p) + q * math.log(q)) / math.log(2))
    assert r.longest_monologue_share == pytest.approx(6 / 13)
    assert r.question_rate == pytest.approx(1 / 3)
    assert r.image_mention_rate == pytest.approx(1 / 13 * 1000)
    assert r.repeated_4gram_rate == 0.0
    assert r.distinct_2 == 1.0


def test_switch_rate_counts_real_changes_of_speaker() -> None:
    r = style_of_text("Speaker 1: one two\nSpeaker 1: three four\nSpeaker 2: five six")
    assert r.num_turns == 2
    assert r.switch_rate == pytest.approx(1 / 6 * 1000)


def test_repeated_4grams_and_balance_extremes() -> None:
    r = style_of_text("A: a b c d a b c d\nB: e")
    # 4-grams of "a b c d a b c d e": abcd, bcda, cdab, dabc, abcd(repeat), bcde -> 1 of 6 repeats
    assert r.repeated_4gram_rate == pytest.approx(1 / 6)
    mono = style_of_text("Speaker 1: all mine")
    assert (mono.num_speakers, mono.speaker_balance, mono.longest_monologue_share) == (1, 0.0, 1.0)


def test_structured_turns_win_over_text() -> None:
    d = common_pb2.Dialogue(
        text="garbage without labels",
        turns=[common_pb2.Turn(speaker="Alex", text="Hi there."), common_pb2.Turn(speaker="Sam", text="Hello."),
               common_pb2.Turn(speaker="sam", text="Again?"), common_pb2.Turn(speaker="Alex", text="")],
    )
    r = style_of_dialogue(d)
    assert (r.num_turns, r.num_speakers, r.words) == (2, 2, 4)
    assert r.question_rate == 0.5


def test_known_speakers_from_the_dialogue() -> None:
    d = common_pb2.Dialogue(text="Mia: hello there", speakers=[common_pb2.Speaker(name="Mia")])
    r = style_of_dialogue(d)
    assert (r.num_turns, r.words) == (1, 2)


def test_robust_fills_the_proto() -> None:
    proto = style_of_text("A: why?\nB: because").to_proto()
    assert isinstance(proto, common_pb2.StyleMetrics)
    assert (proto.num_turns, proto.num_speakers, proto.question_rate) == (2, 2, 0.5)
