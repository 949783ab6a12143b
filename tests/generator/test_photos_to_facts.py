"""Photos without captions: the text-only generator reads what perception (real weights) found in them, and the
facts travel on the DialogueGenerated with each image."""

from __future__ import annotations

from pathlib import Path

import pytest
import skimage.data
from gen_helpers import GOOD_DIALOGUE, Reply, generator_settings
from PIL import Image

from vispod.common.bus import EventPublisher, EventReader
from vispod.common.topics import Topic, dlq_topic
from vispod.generator.adapters import AdapterRegistry
from vispod.generator.backends.openai import OpenAIBackend
from vispod.generator.engine import Generator
from vispod.generator.service import build
from vispod.v1 import common_pb2, events_pb2


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos, no captions: a cat, a cup of coffee, a blank grey frame."""
    root = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage.data.chelsea()).save(root / "1.jpg")
    Image.fromarray(skimage.data.coffee()).save(root / "2.jpg")
    Image.new("RGB", (320, 240), (128, 128, 128)).save(root / "3.jpg")
    return root


def _event(photo_dir: Path, captions: tuple[str, ...] = ("", "", "")) -> events_pb2.ImageSetSubmitted:
    images = [common_pb2.ImageRef(uri=(photo_dir / f"{i + 1}.jpg").as_uri(), caption=c) for i, c in enumerate(captions)]
    return events_pb2.ImageSetSubmitted(image_set_id="photos-1", images=images, seed=3)


def _generator(photo_dir: Path, engine, **kw) -> Generator:
    s = generator_settings(photo_dir, backend="openai", openai_url=engine.url, text_only=True, **kw)
    return Generator(s, OpenAIBackend.from_settings(s), AdapterRegistry(s.adapter_state_dir, s.adapter_cache_dir, "b"))


def test_photos_without_captions_become_facts_the_model_reads(photo_dir: Path, engine) -> None:
    engine.default = Reply(GOOD_DIALOGUE)
    r = _generator(photo_dir, engine).generate(_event(photo_dir))
    assert r.status == common_pb2.STATUS_OK and r.input_mode == events_pb2.INPUT_MODE_FACTS
    cat, coffee, blank = (ref.perception for ref in r.images)
    assert "cat" in {o.label for o in cat.objects} and "cup" in {o.label for o in coffee.objects}
    assert list(blank.objects) == [] and list(blank.text) == []
    for facts in (cat, coffee, blank):
        assert {m.task for m in facts.models} == {"objects", "text", "labels"}
        assert all(len(m.weights_sha256) == 64 and not m.random_weights for m in facts.models)
    prompt = engine.requests[0]["messages"][1]["content"]
    assert "machine detector listed what it recognised" in prompt and "Do not invent" in prompt
    assert "Scene 1: a cat" in prompt and "Scene 2: " in prompt and "a cup" in prompt
    assert "Scene 3: nothing recognised with confidence" in prompt


def test_a_caption_is_read_beside_the_facts(photo_dir: Path, engine) -> None:
    engine.default = Reply(GOOD_DIALOGUE)
    r = _generator(photo_dir, engine).generate(_event(photo_dir, ("our cat chelsea on the sofa .", "", "")))
    assert r.input_mode == events_pb2.INPUT_MODE_CAPTIONS_AND_FACTS
    prompt = engine.requests[0]["messages"][1]["content"]
    assert "Scene 1: our cat chelsea on the sofa . (detected: a cat" in prompt


def test_facts_mode_never_shows_a_caption(photo_dir: Path, engine) -> None:
    engine.default = Reply(GOOD_DIALOGUE)
    r = _generator(photo_dir, engine, text_input="facts").generate(_event(photo_dir, ("a secret caption", "", "")))
    assert r.input_mode == events_pb2.INPUT_MODE_FACTS and r.images[0].caption == "a secret caption"
    assert "secret" not in engine.requests[0]["messages"][1]["content"]


def test_a_submitters_facts_are_replaced_by_perceptions_own(photo_dir: Path, engine) -> None:
    engine.default = Reply(GOOD_DIALOGUE)
    ev = _event(photo_dir)
    ev.images[2].perception.objects.add(label="elephant", score=0.99)
    r = _generator(photo_dir, engine).generate(ev)
    assert "elephant" not in {o.label for o in r.images[2].perception.objects}
    assert "elephant" not in engine.requests[0]["messages"][1]["content"]


def test_facts_travel_on_the_bus_end_to_end(photo_dir: Path, engine, kafka) -> None:
    """Captionless photos published on Kafka: the DialogueGenerated on the real broker carries each photo's facts
    and the models that made them; a photo that cannot be read is dead-lettered with the reason."""
    engine.default = Reply(GOOD_DIALOGUE)
    s = generator_settings(photo_dir, kafka, backend="openai", openai_url=engine.url, text_only=True)
    handle = build(s).start()
    broken = _event(photo_dir)
    broken.image_set_id = "unreadable"
    broken.images[1].uri = (photo_dir / "missing.jpg").as_uri()
    publisher = EventPublisher(kafka, "test")
    results = EventReader(kafka, [Topic.DIALOGUE_GENERATED])
    dlq = EventReader(kafka, [dlq_topic("generator", kafka.topic_prefix)])
    try:
        publisher.publish(Topic.IMAGESET_SUBMITTED, broken)
        publisher.publish(Topic.IMAGESET_SUBMITTED, _event(photo_dir))
        got = results.read(1, timeout=120)
        letters = dlq.read(1, timeout=30)
    finally:
        publisher.close()
        results.close()
        dlq.close()
        handle.stop()
    r = got[0].message
    assert r.image_set_id == "photos-1" and r.input_mode == events_pb2.INPUT_MODE_FACTS
    assert "cat" in {o.label for o in r.images[0].perception.objects}
    assert [m.name for m in r.images[1].perception.models] == ["ssd-mobilenet-v2-coco", "pp-ocrv4",
                                                              "efficientnet-lite0-imagenet"]
    assert letters[0].message.error_kind == "invalid" and "missing.jpg" in letters[0].message.error
