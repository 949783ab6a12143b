"""Scene-aligned grounding, object hallucination and naturalness: what the metrics service adds from text."""

from __future__ import annotations

from pathlib import Path

import pytest

from vispod.metrics.aligned_grounding import aligned_grounding
from vispod.metrics.caption_grounding import CaptionGrounder
from vispod.metrics.hallucination import hallucination
from vispod.metrics.naturalness import naturalness, naturalness_of_vectors, question_answer_rate, turn_vectors
from vispod.metrics.speaker_turns import Turn, parse_turns
from vispod.v1 import common_pb2

CAPTIONS = ["the family rode the carousel at the county fair.", "our dog caught a frisbee on the beach.",
            "we lit the candles on the birthday cake."]
SCENES = ["The kids would not get off the carousel at the county fair, round and round all afternoon.",
          "Then the dog leapt and caught the frisbee right at the edge of the waves on the beach.",
          "And back home we lit every candle on the birthday cake before singing."]


def test_aligned_scenes_beat_their_shuffled_captions(caption_grounder: CaptionGrounder) -> None:
    right = aligned_grounding(caption_grounder, CAPTIONS, SCENES, [[0], [1], [2]])
    assert right is not None and right.scenes == 3 and right.margin > 0.2
    assert right.aligned > right.shuffled and all(m > 0 for m in right.scene_margins)
    # the same turns, each filed under the wrong photo: coverage is unchanged, the margin turns negative
    wrong = aligned_grounding(caption_grounder, CAPTIONS, SCENES, [[1], [2], [0]])
    assert wrong is not None and wrong.margin < 0 and wrong.caption.coverage == right.caption.coverage
    assert (right.caption.retrieval_hits, wrong.caption.retrieval_hits) == (3, 0)
    alone = aligned_grounding(caption_grounder, [CAPTIONS[0], "", ""], SCENES, [[0], [1], [2]])
    assert alone is not None and alone.scenes == 0 and alone.caption.coverage == 1.0  # no other caption to shuffle
    unreferenced = aligned_grounding(caption_grounder, CAPTIONS, SCENES, [[], [], []])
    assert unreferenced is not None and (unreferenced.scenes, unreferenced.margin) == (0, 0.0)
    assert unreferenced.caption.coverage == right.caption.coverage  # coverage needs no scene
    assert aligned_grounding(caption_grounder, ["", "", ""], SCENES, [[0], [1], [2]]) is None
    with pytest.raises(ValueError, match="turn_photos"):
        aligned_grounding(caption_grounder, CAPTIONS, SCENES, [[0]])


def _photo(caption: str = "", objects: tuple[str, ...] = (), labels: tuple[str, ...] = ()) -> common_pb2.ImageRef:
    ref = common_pb2.ImageRef(uri="file:///x.jpg", caption=caption)
    for label in objects:
        ref.perception.objects.add(label=label, score=0.8)
    for label in labels:
        ref.perception.labels.add(label=label, score=0.5)
    return ref


def test_hallucination_checks_each_scene_against_its_own_photo() -> None:
    photos = [_photo(objects=("dog", "person")), _photo(labels=("seashore",)), _photo(caption="a birthday cake")]
    turns = [common_pb2.Turn(text="Our puppy and two kids!", image_refs=[0]),
             common_pb2.Turn(text="A dog on the seashore, and a pizza.", image_refs=[1]),  # dog: photo 0's, not 1's
             common_pb2.Turn(text="That cake, and the dog again.", image_refs=[]),  # no reference: the whole story
             common_pb2.Turn(text="A golden retriever too.", image_refs=[0])]  # detected "dog" is not that specific
    found = hallucination(turns, photos)
    assert found is not None and found.mentions == 8
    assert dict(found.unsupported) == {"dog": 1, "pizza": 1, "golden retriever": 1}
    assert found.rate == pytest.approx(3 / 8)
    proto = found.to_proto()
    assert (proto.photos_with_perception, proto.photos_with_caption, proto.unsupported) == (2, 1, 3)
    assert hallucination(turns, [_photo(), _photo()]) is None  # no evidence at all: no verdict
    assert hallucination([common_pb2.Turn(text="Lovely light.")], photos).rate == 0.0


def test_question_answer_rate() -> None:
    turns = [Turn("A", "Did you see the boats?"), Turn("B", "I did. They were huge."), Turn("A", "Where next?"),
             Turn("A", "Me again?"), Turn("B", "Why ask?")]
    # answered once; asked three times with a reply (the same speaker, a counter-question); the last has none
    assert question_answer_rate(turns) == pytest.approx(1 / 3)


def test_naturalness_prefers_a_real_transcript_to_its_junk(caption_grounder: CaptionGrounder,
                                                           vist_podcast_50: Path) -> None:
    text = (vist_podcast_50 / "story_46019" / "qwen3-vl-32b-sporc-lora.txt").read_text(encoding="utf-8")
    turns = parse_turns(text)
    real = naturalness(caption_grounder, turns)
    assert real is not None and real.turns == len(turns) >= 6
    assert real.question_answer == question_answer_rate(turns)
    vectors = turn_vectors(caption_grounder, [t.text for t in turns])
    loop = [i % 3 for i in range(len(turns))]
    looping = naturalness_of_vectors([turns[i] for i in loop], [vectors[i] for i in loop], real.weights)
    assert real.novelty > looping.novelty + 0.2 and real.responsiveness > looping.responsiveness
    assert naturalness(caption_grounder, turns[:2]) is None
