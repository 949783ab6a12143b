"""The scene-by-scene plan: markers and labels in turn, budgets from the requested words; the parser reads the
markers as the image each turn discusses and drops them from the dialogue."""

from vispod.generator.parsing import parse_transcript
from vispod.generator.scene_plan import (
    FIRST_CUE,
    LAST_CUE,
    MAX_MARKER_CAPTION,
    MAX_TOKENS_PER_WORD,
    MIDDLE_CUES,
    MIN_TURNS,
    ONLY_CUE,
    scene_marker,
    scene_steps,
    turn_budget,
)


def test_steps_walk_the_scenes_with_speakers_in_turn():
    steps = scene_steps(num_scenes=5, num_speakers=2, turns_per_scene=2, target_words=800)
    assert len(steps) == 10
    assert steps[0].text == f"[Scene 1]\nSpeaker 1: {FIRST_CUE}" and steps[1].text == "Speaker 2:"
    assert steps[2].text == f"[Scene 2]\nSpeaker 1: {MIDDLE_CUES[0]}" and steps[9].text == "Speaker 2:"
    assert all(s.stop == ("\n",) and s.forbid == ("[",) and s.new_line for s in steps)
    lo, soft, hi = turn_budget(800, 10)
    assert (steps[0].min_words, steps[0].soft_words, steps[0].max_words) == (lo, soft, hi)
    assert lo < soft < hi and steps[0].max_new_tokens == hi * MAX_TOKENS_PER_WORD


def test_the_budget_is_in_words_as_before_for_smollm2():
    # 800 words over 10 turns: 80 a turn, as the token budget (108 tokens at 1.35 tokens a word) gave SmolLM2.
    assert turn_budget(800, 10) == (32, 88, 150)


def test_three_speakers_and_short_stories_get_at_least_the_minimum_of_turns():
    steps = scene_steps(num_scenes=2, num_speakers=3, turns_per_scene=2, target_words=300)
    assert len(steps) == MIN_TURNS
    labels = [s.text.split("\n")[-1].split(":")[0] + ":" for s in steps]
    assert labels == ["Speaker 1:", "Speaker 2:", "Speaker 3:", "Speaker 1:", "Speaker 2:", "Speaker 3:"]
    assert sum(s.text.startswith("[Scene") for s in steps) == 2


def test_budget_follows_the_requested_length_within_bounds():
    short, long_ = turn_budget(200, 10), turn_budget(1500, 10)
    assert short[0] < long_[0] and short[2] < long_[2]
    assert turn_budget(10, 10) == turn_budget(20, 10)      # at least 20 words a turn


def test_parser_uses_scene_markers_for_image_refs_and_drops_them():
    text = ("[Scene 1]\nSpeaker 1: What a morning that was.\nSpeaker 2: It really was.\n"
            "[Scene 2]\nSpeaker 1: Then we went on.\nSpeaker 2: And never looked back.")
    result = parse_transcript(text, ["Alex", "Sam"], captions=["a beach", "a road"], num_images=2)
    assert result.ok
    assert [list(t.image_refs) for t in result.turns] == [[0], [0], [1], [1]]
    assert all("[Scene" not in t.text for t in result.turns)
    assert not any("stage" in w for w in result.warnings)


def test_markers_carry_the_scene_caption_when_there_is_one():
    steps = scene_steps(num_scenes=2, num_speakers=2, turns_per_scene=3, target_words=600,
                        captions=["we drove to the [beach] .", "  a\nlong   road "])
    assert steps[0].text == f"[Scene 1: we drove to the (beach) .]\nSpeaker 1: {FIRST_CUE}"
    assert steps[3].text == f"[Scene 2: a long road]\nSpeaker 2: {LAST_CUE}"
    assert scene_marker(0, "x" * 1000) == f"[Scene 1: {'x' * MAX_MARKER_CAPTION}]"
    text = (f"{steps[0].text} The drive was long.\nSpeaker 2: And worth it.\nSpeaker 1: Every mile.\n"
            f"{steps[3].text} Then came the road.\nSpeaker 1: It went on forever.")
    result = parse_transcript(text, ["Alex", "Sam"], captions=["a", "b"], num_images=2)
    assert [list(t.image_refs) for t in result.turns] == [[0], [0], [0], [1], [1]]
    assert all("Scene" not in t.text for t in result.turns)
    assert result.turns[0].text.startswith(FIRST_CUE) and result.turns[3].text.startswith(LAST_CUE)


def test_each_scene_opens_on_a_cue_to_its_photo_and_only_its_first_turn_does():
    steps = scene_steps(num_scenes=5, num_speakers=2, turns_per_scene=2, target_words=800)
    openers = [s.text.split(":", 1)[1].split(":")[-1].strip() for s in steps[::2]]
    assert openers == [FIRST_CUE, *MIDDLE_CUES, LAST_CUE]
    assert all(s.text.endswith(":") for s in steps[1::2])
    assert scene_steps(num_scenes=1, num_speakers=2, turns_per_scene=2, target_words=300)[0].text.endswith(ONLY_CUE)


def test_a_planned_turn_is_about_its_scene_only_whatever_words_it_shares_with_other_photos():
    facts = ["two people and a dog", "three people and a boat", "a cake and two people"]
    text = ("[Scene 1: two people and a dog]\nSpeaker 1: The people and the dog, then the boat and a cake.\n"
            "Speaker 2: All those people!\n[Scene 3: a cake and two people]\nSpeaker 1: And the third photo, people.")
    result = parse_transcript(text, ["Alex", "Sam"], captions=facts, num_images=3)
    assert [list(t.image_refs) for t in result.turns] == [[0], [0], [2]]
    # A dialogue written in one go keeps the keyword matcher ("people" is all of photo 1's keywords, so it matches).
    unplanned = parse_transcript("Speaker 1: The people and the boat.\nSpeaker 2: And the third photo.", ["A", "B"],
                                 captions=facts, num_images=3)
    assert [list(t.image_refs) for t in unplanned.turns] == [[0, 1], [2]]
