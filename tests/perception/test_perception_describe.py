"""Facts as the phrase a text model reads."""

from __future__ import annotations

from vispod.perception.describe import NOTHING, facts_phrase, labels_shown
from vispod.v1 import common_pb2


def _facts(objects=(), text=(), labels=()) -> common_pb2.Perception:
    return common_pb2.Perception(
        objects=[common_pb2.DetectedObject(label=lab, score=s) for lab, s in objects],
        text=[common_pb2.DetectedText(text=t, score=0.9) for t in text],
        labels=[common_pb2.ImageLabel(label=lab, score=0.5) for lab in labels])


def test_objects_are_counted_in_order_of_confidence() -> None:
    facts = _facts([("truck", 0.5), ("car", 0.9), ("person", 0.8), ("car", 0.6), ("person", 0.4)])
    assert facts_phrase(facts) == "two cars, two people and a truck"


def test_text_and_labels_follow_the_objects() -> None:
    facts = _facts([("umbrella", 0.7)], ["POLICE", "Main St"], ["police van", "cab"])
    assert facts_phrase(facts, labels=True) == 'an umbrella; text: "POLICE", "Main St"; looks like: police van, cab'


def test_imagenet_names_read_as_their_terms() -> None:
    assert facts_phrase(_facts(labels=["tabby"]), labels=True) == "looks like: tabby cat"


def test_labels_are_told_only_as_calibrated() -> None:
    # On VIST photos no threshold made the classifier's labels as precise as the detector's objects.
    assert labels_shown() is False
    assert facts_phrase(_facts([("dog", 0.9)], labels=["seashore"])) == "a dog"


def test_nothing_found_says_so() -> None:
    assert facts_phrase(_facts()) == NOTHING
