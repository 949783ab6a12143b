"""Caption pairs: real turns cut along scenes, one visual caption per scene, taken out of its turn."""

import json

from vispod.dataset.caption_pairs import (
    PairStats,
    ScenePair,
    SourceDialogue,
    pairs_from_dialogue,
    scene_caption,
    write_pairs,
)

A = ("We drove to the old harbour at sunrise and the fishing boats were coming in. "
     "Honestly I could have stayed there all morning just listening to the gulls.")
B = ("That sounds lovely. I remember the smell of the market more than anything, all that fresh bread. "
     "Did you get anything to eat while you were down there?")
C = ("We did, there was a tiny stall by the water. The kids ran along the beach with the dog while we waited "
     "for our coffee and it was the best part of the whole trip.")
D = ("I love that. Our trip was rainy, so we spent most of it in a museum looking at old paintings. "
     "It was quieter than I expected but really worth it.")


def _dialogue(turns):
    return SourceDialogue("test", "d1", tuple(turns))


def test_caption_is_a_visual_sentence_removed_from_its_turn():
    caption, idx, rest = scene_caption([A, B])
    # "market" and "bread" are two visual words (the harbour sentence has one: "sunrise").
    assert caption == "i remember the smell of the market more than anything, all that fresh bread ."
    assert idx == 1
    assert "market" not in rest and rest.startswith("That sounds lovely. Did you get")


def test_pairs_follow_the_scene_format_with_alternating_relabelled_speakers():
    stats = PairStats()
    pairs = pairs_from_dialogue(_dialogue([("ann", A), ("bo", B), ("ann", C), ("bo", D)]), scenes=2, stats=stats)
    assert len(pairs) == 1 and stats.pairs == 1
    target = pairs[0].target().splitlines()
    assert target[0] == "[Scene 1]" and target[3] == "[Scene 2]"
    assert [line.split(":")[0] for line in target if not line.startswith("[")] == [
        "Speaker 1", "Speaker 2", "Speaker 1", "Speaker 2"]
    for caption in pairs[0].captions:  # no caption is recited in the dialogue
        assert caption.rstrip(" .") not in pairs[0].target().lower()


def test_rejected_windows_are_counted_with_a_reason():
    stats = PairStats()
    short = [("ann", "Yes."), ("bo", "No way."), ("ann", A), ("bo", B)]
    assert pairs_from_dialogue(_dialogue(short), scenes=2, stats=stats) == []
    assert stats.rejected["turn_too_short"] >= 1
    stats = PairStats()
    same = [("ann", A), ("ann", B), ("bo", C), ("ann", D)]
    assert pairs_from_dialogue(_dialogue(same), scenes=2, stats=stats) == []
    assert stats.rejected["same_speaker_twice"] >= 1


def test_write_pairs_is_the_trainer_format(tmp_path):
    pairs = pairs_from_dialogue(_dialogue([("ann", A), ("bo", B), ("ann", C), ("bo", D)]), scenes=2)

    def prompt_fn(captions, speakers, words):
        return "system", "\n".join(captions) + f"\n{len(speakers)} speakers, {words} words"

    manifest = write_pairs(tmp_path, pairs, prompt_fn, {"sources": ["test"]})
    row = json.loads((tmp_path / "pairs.jsonl").read_text().splitlines()[0])
    assert row["image"] == [] and [c["from"] for c in row["conversations"]] == ["system", "human", "gpt"]
    assert row["conversations"][2]["value"].startswith("[Scene 1]\nSpeaker 1: ")
    assert len(manifest["dataset_sha256"]) == 64 and manifest["pairs"] == 1

    from vispod.trainer.dataset import load_pairs
    loaded = load_pairs(tmp_path, images_per_pair=0)
    assert loaded[0].system == "system" and loaded[0].dialogue == row["conversations"][2]["value"]


def test_target_markers_can_carry_the_caption_in_the_generators_format():
    from vispod.generator.scene_plan import scene_marker

    pair = ScenePair("p", "test", ("a red kite over the park .", "two dogs on the beach ."),
                     ((0, 0, "Look at that."), (0, 1, "So high!"), (1, 0, "And then the dogs."), (1, 1, "Wet dogs.")))
    lines = pair.target(marker=scene_marker).splitlines()
    assert lines[0] == "[Scene 1: a red kite over the park .]" and lines[3] == "[Scene 2: two dogs on the beach .]"
    assert pair.target().splitlines()[0] == "[Scene 1]"


def test_the_caption_sentence_can_stay_in_its_turn():
    turns = tuple(("A" if i % 2 == 0 else "B",
                   f"We walked down to the old red pier by the harbour at sunset number {i}. "
                   "It was a long and quiet evening for all of us, and nobody wanted to go home yet.")
                  for i in range(4))
    d = SourceDialogue("d1", "test", turns)
    taken, kept = (pairs_from_dialogue(d, scenes=2, min_turn_words=10, keep_caption_sentence=k)[0]
                   for k in (False, True))
    assert taken.captions == kept.captions
    assert "old red pier" not in taken.turns[0][2] and "old red pier" in kept.turns[0][2]


def test_with_min_shared_the_caption_is_a_sentence_its_scene_talks_about():
    reply = ("Fishing boats at sunrise sound lovely, the harbour must have been busy. "
             "I remember the smell of the market more than anything, all that fresh bread.")
    # By visual words alone the market sentence wins; nothing else in the scene mentions the market or bread.
    assert scene_caption([A, reply])[0].startswith("i remember the smell of the market")
    caption, idx, rest = scene_caption([A, reply], min_shared=2)
    assert caption == "we drove to the old harbour at sunrise and the fishing boats were coming in ."
    assert idx == 0 and rest.startswith("Honestly")
    # A scene whose talk shares too little with any candidate sentence is counted, not silently dropped.
    stats = PairStats()
    assert pairs_from_dialogue(_dialogue([("ann", A), ("bo", B), ("ann", C), ("bo", D)]), scenes=2,
                               min_shared=3, stats=stats) == []
    assert stats.rejected["no_discussed_caption_sentence"] >= 1
