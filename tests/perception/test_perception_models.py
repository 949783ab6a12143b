"""The three perception models on real photos, with their real weights: what they find, where, and who found it."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from vispod.common.visual_vocabulary import coco_category, imagenet_term
from vispod.perception.perceiver import PhotoPerceiver


def _labels(facts) -> set[str]:
    return {o.label for o in facts.objects}


def test_the_detector_finds_the_main_object_of_real_photos(facts) -> None:
    assert "cat" in _labels(facts["chelsea"])
    assert "cup" in _labels(facts["coffee"])
    assert "person" in _labels(facts["astronaut"])


def test_boxes_are_normalised_and_cover_the_object(perceiver: PhotoPerceiver, facts) -> None:
    cat = max((o for o in facts["chelsea"].objects if o.label == "cat"), key=lambda o: o.score)
    b = cat.box
    assert 0.0 <= b.x_min < b.x_max <= 1.0 and 0.0 <= b.y_min < b.y_max <= 1.0
    # Chelsea fills most of the frame: the box covers over a third of it and holds the centre.
    assert (b.x_max - b.x_min) * (b.y_max - b.y_min) > 0.33
    assert b.x_min < 0.5 < b.x_max and b.y_min < 0.5 < b.y_max
    for o in facts["chelsea"].objects:
        assert o.score >= perceiver.settings.object_min_score


def test_the_classifier_names_what_kind_of_photo_it_is(facts) -> None:
    cat_labels = [imagenet_term(lab.label) for lab in facts["chelsea"].labels]
    assert cat_labels and coco_category(cat_labels[0]) == "cat", cat_labels
    coffee_labels = [imagenet_term(lab.label) for lab in facts["coffee"].labels]
    assert "espresso" in coffee_labels or "cup" in coffee_labels, coffee_labels


def test_ocr_reads_a_sign(perceiver: PhotoPerceiver) -> None:
    img = Image.new("RGB", (640, 360), (235, 235, 225))
    draw = ImageDraw.Draw(img)
    draw.rectangle((90, 110, 550, 250), fill=(20, 40, 140))
    draw.text((120, 130), "HARBOR ST", fill=(255, 255, 255), font=ImageFont.load_default(size=84))
    texts = [t.text.upper().replace(" ", "") for t in perceiver.perceive(img).text]
    assert any("HARBOR" in t for t in texts), texts


def test_every_fact_says_which_real_model_made_it(facts) -> None:
    coffee = facts["coffee"]
    assert [m.task for m in coffee.models] == ["objects", "text", "labels"]
    assert {m.name for m in coffee.models} == {"ssd-mobilenet-v2-coco", "pp-ocrv4", "efficientnet-lite0-imagenet"}
    for m in coffee.models:
        assert len(m.weights_sha256) == 64 and not m.random_weights
    assert coffee.seconds > 0


def test_a_blank_photo_gives_no_facts_not_an_error(perceiver: PhotoPerceiver) -> None:
    facts = perceiver.perceive(Image.new("RGB", (320, 240), (128, 128, 128)))
    assert list(facts.objects) == [] and list(facts.text) == []


def test_facts_are_cached_by_content(perceiver: PhotoPerceiver, photos) -> None:
    first = perceiver.perceive(photos["astronaut"], "d" * 64)
    again = perceiver.perceive(Image.new("RGB", (8, 8)), "d" * 64)   # same content digest: the cached facts
    assert again == first and any(o.label == "person" for o in again.objects)
