"""The visual vocabulary: the detector's and classifier's label sets and the nouns that name them in prose."""

import hashlib
from importlib import resources

from vispod.common import visual_vocabulary as vocab


def test_coco_map_is_the_90_id_model_zoo_layout_with_80_names():
    assert len(vocab.COCO_LABEL_MAP) == 80 and len(set(vocab.COCO_NAMES)) == 80
    assert min(vocab.COCO_LABEL_MAP) == 1 and max(vocab.COCO_LABEL_MAP) == 90
    assert set(range(1, 91)) - set(vocab.COCO_LABEL_MAP) == {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
    assert vocab.COCO_LABEL_MAP[1] == "person" and vocab.COCO_LABEL_MAP[18] == "dog"
    assert vocab.COCO_LABEL_MAP[67] == "dining table" and vocab.COCO_LABEL_MAP[90] == "toothbrush"


def test_imagenet_classes_are_torchvisions_1000_names_in_index_order():
    data = resources.files("vispod.common").joinpath("imagenet_classes.txt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == "ee4fa67b1dd46919ef87529b70e25bdd1ec9ebd350de3ad426e6640eb70320a1"
    names = vocab.IMAGENET_CLASSES
    assert len(names) == len(set(names)) == 1000
    assert (names[0], names[235], names[978], names[999]) == ("tench", "German shepherd", "seashore", "toilet tissue")


def test_synonyms_and_plurals_map_everyday_nouns_to_labels():
    text = "A puppy, two kids and their mom by the automobiles; people on bikes, a sofa and three televisions."
    assert vocab.noun_mentions(text) == ["dog", "person", "person", "car", "person", "bicycle", "couch", "tv"]
    assert vocab.concrete_nouns(text) == ["dog", "person", "car", "bicycle", "couch", "tv"]


def test_longest_phrase_wins_and_imagenet_names_are_found():
    assert vocab.concrete_nouns("Our German Shepherd ran along the seashore to the park bench.") == [
        "german shepherd", "seashore", "park bench"]
    assert vocab.concrete_nouns("hot dogs at the traffic lights") == ["hot dog", "traffic light"]


def test_words_whose_everyday_sense_is_not_the_object_are_not_mentions():
    assert vocab.concrete_nouns("Time flies; she wore an orange suit, ties and an iron will. Bear with me.") == [
        "bear"]  # "bear" stays: too central to photos to drop, its verb sense is the known cost
    assert vocab.concrete_nouns("a bowl of oranges") == ["bowl", "orange"]
    assert vocab.concrete_nouns("the plane landed") == ["airplane"]  # not ImageNet's carpenter's plane


def test_support_comes_from_caption_detector_and_classifier_with_parents():
    support = vocab.supporting_terms(
        caption="a man walks his dog", object_labels=["car"], image_labels=["German shepherd", "seashore", "kite"])
    assert {"person", "dog", "car", "german shepherd", "seashore", "kite bird", "bird"} <= support
    assert vocab.is_supported("dog", vocab.supporting_terms(image_labels=["golden retriever"]))
    # a general fact does not vouch for a specific claim
    assert not vocab.is_supported("golden retriever", vocab.supporting_terms(object_labels=["dog"]))
    assert not vocab.is_supported("pizza", support)


def test_every_term_reaches_the_vocabulary_and_parents_are_coco_categories():
    assert len(vocab.vocabulary()) > 1000
    assert vocab.coco_category("german shepherd") == "dog" and vocab.coco_category("sports car") == "car"
    assert vocab.coco_category("tabby cat") == "cat" and vocab.coco_category("school bus") == "bus"
    assert vocab.coco_category("seashore") is None
    for word, term in vocab.SYNONYMS.items():
        assert term in vocab.vocabulary(), word


def test_model_labels_are_what_the_detector_and_classifier_emit() -> None:
    coco, imagenet = vocab.model_labels("A puppy, our German Shepherd and a tabby by the seashore; the plane left.")
    assert coco == ["dog", "cat", "airplane"]
    assert imagenet == ["German shepherd", "tabby", "seashore"]  # the classifier's own spelling of each class
    assert set(coco) <= set(vocab.COCO_NAMES) and set(imagenet) <= set(vocab.IMAGENET_CLASSES)


def test_matching_is_the_same_in_every_process() -> None:
    """Terms spelled like another term's plural keep their own name, whatever the process's string hashing."""
    import subprocess
    import sys

    code = ("from vispod.common.visual_vocabulary import noun_mentions; "
            "print(noun_mentions('sunglasses and a sunglass, hot dogs, mice and a computer mouse'))")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)}).stdout
               for seed in (1, 2, 3)}
    assert len(outputs) == 1
    assert vocab.noun_mentions("sunglasses and a sunglass") == ["sunglasses", "sunglass"]
