"""Format validity: speakers and turns, echoed prompts, repeated lines; style numbers from style.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from vispod.metrics.format_validity import check_format
from vispod.metrics.speaker_turns import parse_turns
from vispod.metrics.style import robust_style_of_turns

PROMPT = ("Write a podcast dialogue between Alex and Sam about these scenes, in story order.\n"
          "1. the whole family visited a local fair on a sunny saturday afternoon.\n"
          "2. the kids rode the carousel.")
GOOD = """Alex: Welcome back! Today we are heading to a fair.
Sam: A fair? I love the smell of popcorn and hay.
Alex: The whole family went, grandparents included, on a bright afternoon.
Sam: And the kids, I bet they went straight for the rides.
Alex: Straight to the carousel, painted horses and all.
Sam: Yeah.
Alex: Round and round until the music stopped.
Sam: Yeah."""


def test_a_good_dialogue_is_valid_with_style_from_style_py() -> None:
    check = check_format(GOOD, PROMPT)
    assert check.valid and check.reasons == ()
    assert (check.num_speakers, check.num_turns) == (2, 8)
    expected = robust_style_of_turns(parse_turns(GOOD))
    assert check.distinct_2 == expected.distinct_2 and check.avg_turn_length == expected.avg_turn_length
    assert check.style == expected  # "Yeah." twice is talk, not a loop


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Alex: Hi.\nSam: Hello.\nAlex: Bye now.", "3 turn(s), fewer than 6"),
        ("\n".join(f"Alex: line number {i} of a monologue." for i in range(8)), "1 speaker(s), fewer than 2"),
        ("Just prose with no speaker labels at all, going on and on.", "1 speaker(s), fewer than 2"),
        ("", "0 speaker(s), fewer than 2"),
    ],
)
def test_too_few_speakers_or_turns(text: str, reason: str) -> None:
    check = check_format(text, PROMPT)
    assert not check.valid and reason in check.reasons
    proto = check.to_proto()
    assert proto.too_few_speakers == ("speaker(s)" in reason or "speakers" in check.codes)
    assert proto.too_few_turns == ("turns" in check.codes) and not proto.valid


def test_an_echoed_prompt_is_caught_with_its_words() -> None:
    echo = "The whole family visited a local fair, on a sunny Saturday afternoon!\n" + GOOD  # preamble counts too
    check = check_format(echo, PROMPT)
    assert not check.valid
    assert check.echoed == "the whole family visited a local fair on"
    assert check.reasons == ('echoes the prompt: "the whole family visited a local fair on"',)
    assert check.codes == ("echo",)
    seven = GOOD.replace("The whole family went", "The whole family visited a local fair and went")  # 7-word run
    assert check_format(seven, PROMPT).valid
    assert check_format(echo, "").valid  # no prompt (the paper's transcripts): echo check off


def test_repeated_turns_and_sentences() -> None:
    turn_loop = GOOD + "\nAlex: Round and round until the music stopped."
    assert check_format(turn_loop, PROMPT).repeated == "Round and round until the music stopped."
    sentence_loop = GOOD.replace("Sam: Yeah.", "Sam: It was a truly wonderful day out. Agreed?", 1) + \
        "\nAlex: Honestly. It was a TRULY wonderful day out!"
    check = check_format(sentence_loop, PROMPT)
    assert not check.valid and check.reasons[0] == 'repeats a line: "It was a TRULY wonderful day out!"'
    assert check.codes == ("exact_repeat", "near_duplicate")  # the two turns are also near-duplicates
    five = GOOD.replace("Sam: Yeah.", "Sam: A fair to remember. Sure.", 1) + "\nAlex: A fair to remember."
    assert check_format(five, PROMPT).repeated is None  # a 5-word sentence (and a 4-word turn once) may recur


def test_the_paper_transcripts_are_valid(vist_podcast_50: Path) -> None:
    texts = sorted(vist_podcast_50.glob("story_*/qwen3-vl-*.txt"))
    valid = sum(check_format(p.read_text(encoding="utf-8")).valid for p in texts)
    assert len(texts) == 100 and valid >= 98  # one 235B transcript repeats a 6-word sentence


def test_near_duplicate_turns_are_their_own_category() -> None:
    loop = GOOD + "\nAlex: And the kids, I bet they went straight for the big rides."
    check = check_format(loop, PROMPT)
    assert not check.valid and check.codes == ("near_duplicate",)
    assert check.near_duplicate == ("And the kids, I bet they went straight for the rides.",
                                    "And the kids, I bet they went straight for the big rides.")
    assert check.to_proto().near_duplicate and not check.to_proto().exact_repeat


def test_a_label_inside_a_turn_is_label_echo() -> None:
    both_parts = GOOD.replace("Sam: Yeah.", "Sam: Yeah. Alex: Totally, what a day.", 1)
    check = check_format(both_parts, PROMPT)
    assert check.codes == ("label_echo",) and check.label_echo == "Alex"
    doubled = GOOD.replace("Alex: Straight to", "Alex: Speaker 1: Straight to")
    assert check_format(doubled, PROMPT).label_echo == "Speaker 1"
    assert check_format(GOOD.replace("Sam: Yeah.", "Sam: We left at 10:30: tired.", 1), PROMPT).valid
    proto = check.to_proto()
    assert proto.label_echo and not proto.valid and proto.num_turns == 8 and list(proto.reasons) == list(check.reasons)
