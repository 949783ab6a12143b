"""Parsing model output into turns: labels, repairs, malformed output, image references, streaming."""

from __future__ import annotations

from vispod.generator.parsing import ImageMatcher, TranscriptParser, parse_transcript, render

NAMES = ["Alice", "Bob"]


def test_speaker_n_maps_to_requested_names_and_renders() -> None:
    r = parse_transcript("Speaker 1: Hi Bob.\nSpeaker 2: Hi Alice!\n", NAMES)
    assert r.ok and [(t.speaker, t.text) for t in r.turns] == [("Alice", "Hi Bob."), ("Bob", "Hi Alice!")]
    assert render(r.turns) == "Alice: Hi Bob.\n\nBob: Hi Alice!"
    assert r.warnings == []


def test_label_variants_are_normalised() -> None:
    text = ("**Speaker 1:** one.\n- [Speaker 2]: two.\n**Host 1 (Alice):** three.\nBOB: four.\n"
            "alice: five.\nSpeaker #2: six.")
    r = parse_transcript(text, NAMES)
    assert r.ok, r.error
    assert [t.speaker for t in r.turns] == ["Alice", "Bob", "Alice", "Bob", "Alice", "Bob"]
    assert [t.text for t in r.turns][:2] == ["one.", "two."]


def test_preamble_stage_directions_and_consecutive_turns_are_repaired() -> None:
    text = ("# Our podcast\nHere is the dialogue:\n\nSpeaker 1: Hello.\n(music plays)\nSpeaker 1: Still me.\n"
            "continued line.\nSpeaker 2: Hi.")
    r = parse_transcript(text, NAMES)
    assert r.ok
    assert [(t.speaker, t.text) for t in r.turns] == [("Alice", "Hello. Still me. continued line."), ("Bob", "Hi.")]
    assert any("before the first speaker label" in w for w in r.warnings)
    assert any("stage-direction" in w for w in r.warnings)
    assert any("merged 1 consecutive" in w for w in r.warnings)


def test_missing_labels_is_malformed() -> None:
    r = parse_transcript("It was a sunny day at the beach and everyone was happy.", NAMES)
    assert not r.ok and "no speaker labels" in r.error and r.turns == []


def test_one_speaker_only_is_malformed() -> None:
    r = parse_transcript("Speaker 1: a.\nSpeaker 1: b.", NAMES)
    assert not r.ok and "only one speaker (Alice)" in r.error


def test_unknown_speaker_is_malformed() -> None:
    r = parse_transcript("Speaker 1: a.\nSpeaker 2: b.\nSpeaker 3: c.", NAMES)
    assert not r.ok and "unknown speaker label(s): Speaker 3" in r.error
    r = parse_transcript("Alice: a.\nCharlie: b.", NAMES)
    assert not r.ok and "Charlie" in r.error


def test_invented_names_map_by_order_when_unambiguous() -> None:
    r = parse_transcript("Alex: hi.\nJordan: hello.\nAlex: bye.", ["Speaker 1", "Speaker 2"])
    assert r.ok and [t.speaker for t in r.turns] == ["Speaker 1", "Speaker 2", "Speaker 1"]
    assert any("Alex → Speaker 1" in w for w in r.warnings)
    r = parse_transcript("Alex: hi.\nJordan: hello.\nSam: bye.", ["Speaker 1", "Speaker 2"])
    assert not r.ok


def test_truncated_unfinished_last_turn_is_dropped() -> None:
    r = parse_transcript("Speaker 1: a.\nSpeaker 2: b.\nSpeaker 1: and then we went to", NAMES, truncated=True)
    assert r.ok and len(r.turns) == 2 and any("unfinished last turn" in w for w in r.warnings)
    r = parse_transcript("Speaker 1: a.\nSpeaker 2: and then", NAMES, truncated=True)
    assert not r.ok and "only one speaker" in r.error
    r = parse_transcript("Speaker 1: a.\nSpeaker 2: done.", NAMES, truncated=True)
    assert r.ok and len(r.turns) == 2


def test_ordinary_colons_are_text() -> None:
    r = parse_transcript("Speaker 1: so here is the thing: we went.\nand what I mean is: sand.\nSpeaker 2: ok.",
                         NAMES)
    assert r.ok and r.turns[0].text == "so here is the thing: we went. and what I mean is: sand."


def test_image_refs_from_ordinals_and_caption_keywords() -> None:
    m = ImageMatcher(["waves crashing on the beach", "a birthday cake with candles", "a dog in a park"], 3)
    assert m.refs("Look at the second picture.") == [1]
    assert m.refs("The last scene, and photo 1!") == [0, 2]
    assert m.refs("Those candles on the birthday cake!") == [1]
    assert m.refs("The dog, wow.") == []          # one shared word is not enough for a 2+ keyword caption
    assert m.refs("The tenth photo") == []         # out of range


def test_streaming_returns_turns_when_complete_and_finish_returns_the_rest() -> None:
    p = TranscriptParser(NAMES, ["beach waves"], 1)
    assert p.feed("Speaker 1: Hel") == []
    assert p.feed("lo there.\nSpeaker 1: more") == []            # same speaker: still growing
    out = p.feed(".\nSpeaker 2: Hi!\n")
    assert [(t.speaker, t.text) for t in out] == [("Alice", "Hello there. more.")]
    r = p.finish()
    assert r.ok and [t.speaker for t in r.pending] == ["Bob"] and len(r.turns) == 2


def test_unknown_labels_hold_back_streamed_turns() -> None:
    p = TranscriptParser(["Speaker 1", "Speaker 2"])
    assert p.feed("Alex: hi.\nJordan: hello.\nAlex: bye.\n") == []
    r = p.finish()
    assert r.ok and len(r.pending) == 3
