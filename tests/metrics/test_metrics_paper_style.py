"""Paper-mode style metrics against values computed by hand (definitions: shared/design/FACTS.md)."""

from __future__ import annotations

import pytest

from vispod.metrics.paper_style import paper_tokens, paper_turns
from vispod.metrics.style import style_of_dialogue, style_of_text
from vispod.v1 import common_pb2

CONSTRUCTED = "\n".join([
    "Intro line before labels.",  # before the first label: ignored by the turn parser, counted in words
    "Speaker 1: The cat sat.",
    "",
    "Speaker 2: The cat ran!",
    "It was fast.",  # continuation of Speaker 2
    "Speaker 1:",  # empty turn: dropped
    "[Jamie]: Yes yes.",
])


def test_constructed_transcript_by_hand() -> None:
    r = style_of_text(CONSTRUCTED, "paper")
    # 4 + 5 + 5 + 3 + 2 + 3 whitespace-separated words
    assert r.words == 22
    # turns: "The cat sat." (3), "The cat ran! It was fast." (6), "Yes yes." (2)
    assert r.num_turns == 3
    assert r.avg_turn_length == pytest.approx(11 / 3)
    assert r.switch_rate == pytest.approx(2 / 11 * 1000)
    # 22 tokens, 16 distinct; 21 bigrams of which "the cat" and "speaker 1" repeat once each
    assert r.distinct_1 == pytest.approx(16 / 22)
    assert r.distinct_2 == pytest.approx(19 / 21)


def test_turn_labels_and_texts() -> None:
    turns = paper_turns(CONSTRUCTED)
    assert [(t.label, t.text) for t in turns] == [
        ("Speaker 1", "The cat sat."),
        ("Speaker 2", "The cat ran! It was fast."),
        ("Jamie", "Yes yes."),
    ]


def test_markdown_and_caps_labels_find_no_turns_as_in_the_paper() -> None:
    text = "**Host 1 (Alex):** Hi there, welcome.\n\n**Host 2 (Sam):** Hello.\nHOST: More words here."
    r = style_of_text(text, "paper")
    assert (r.num_turns, r.avg_turn_length, r.switch_rate) == (0, 0.0, 0.0)
    assert r.words == 6 + 4 + 4


def test_switch_rate_counts_turns_not_speaker_changes() -> None:
    r = style_of_text("Speaker 1: one two\nSpeaker 1: three four\nSpeaker 1: five six", "paper")
    assert r.num_turns == 3
    assert r.switch_rate == pytest.approx(2 / 6 * 1000)


def test_label_variants_of_the_paper_regex() -> None:
    text = "Speaker1: a b\nHost: c\nGuest: d\nCo-host: e\n[Speaker 3]: f g h"
    assert [t.label for t in paper_turns(text)] == ["Speaker1", "Host", "Guest", "Co-host", "Speaker 3"]


def test_only_ascii_punctuation_is_deleted() -> None:
    assert paper_tokens("It’s “great” — Yes, REALLY.") == ["it’s", "“great”", "—", "yes", "really"]


def test_degenerate_inputs() -> None:
    assert style_of_text("", "paper").as_dict() == {
        "words": 0, "distinct_1": 0.0, "distinct_2": 0.0, "avg_turn_length": 0.0, "switch_rate": 0.0, "num_turns": 0,
    }
    assert style_of_text("Hello", "paper").distinct_2 == 0.0  # no bigram at all
    one = style_of_text("Speaker 1: hello", "paper")
    assert (one.num_turns, one.avg_turn_length, one.switch_rate) == (1, 1.0, 0.0)


def test_paper_mode_reads_rendered_turns_when_text_is_empty() -> None:
    d = common_pb2.Dialogue(turns=[common_pb2.Turn(speaker="Speaker 1", text="a b c"),
                                   common_pb2.Turn(speaker="Speaker 2", text="d e")])
    r = style_of_dialogue(d, "paper")
    assert (r.num_turns, r.avg_turn_length) == (2, 2.5)


def test_paper_proto_has_only_paper_fields() -> None:
    proto = style_of_text(CONSTRUCTED, "paper").to_proto()
    assert proto.num_turns == 3 and proto.num_speakers == 0 and proto.speaker_balance == 0.0
