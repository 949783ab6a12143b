"""The demo's count of photos whose detected objects their scene's turns name."""

from __future__ import annotations

from vispod.devkit.demo import discussed_statement, objects_discussed
from vispod.v1 import common_pb2, events_pb2


def _dialogue() -> events_pb2.DialogueGenerated:
    dog, street, blank = common_pb2.ImageRef(), common_pb2.ImageRef(), common_pb2.ImageRef()
    dog.perception.objects.add(label="dog", score=0.9)
    dog.perception.objects.add(label="frisbee", score=0.6)
    street.perception.objects.add(label="car", score=0.8)
    turns = [common_pb2.Turn(speaker="A", text="That puppy leaps so high!", image_refs=[0]),
             common_pb2.Turn(speaker="B", text="And the street was so quiet that evening.", image_refs=[1]),
             common_pb2.Turn(speaker="A", text="A car? No, a bus.", image_refs=[2])]
    return events_pb2.DialogueGenerated(images=[dog, street, blank], dialogue=common_pb2.Dialogue(turns=turns))


def test_a_synonym_names_a_detected_object_and_only_its_own_scene_counts() -> None:
    assert objects_discussed(_dialogue()) == [(["dog", "frisbee"], ["dog"]), (["car"], []), ([], [])]


def test_the_statement_counts_photos_with_objects() -> None:
    text = discussed_statement(_dialogue())
    assert text.startswith("objects discussed: 1 of 2 photos") and "photo 2: detected car; named none" in text
