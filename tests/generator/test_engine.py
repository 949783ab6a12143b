"""The generation core with a scripted engine: repairs, one bounded retry, FAILED results with reasons."""

from __future__ import annotations

import pytest
from gen_helpers import GOOD_DIALOGUE, Reply, generator_settings, make_event

from vispod.common.errors import InvalidArgument
from vispod.generator.adapters import AdapterRegistry
from vispod.generator.backends.openai import OpenAIBackend
from vispod.generator.engine import Generator
from vispod.v1 import common_pb2, events_pb2


def _generator(story_dir, engine, **kw) -> Generator:
    s = generator_settings(story_dir, backend="openai", openai_url=engine.url, **kw)
    backend = OpenAIBackend.from_settings(s)
    registry = AdapterRegistry(s.adapter_state_dir, s.adapter_cache_dir, "base")
    return Generator(s, backend, registry)


def test_ok_dialogue_with_names_streamed_turns_and_record(story_dir, engine) -> None:
    gen = _generator(story_dir, engine)
    streamed: list[common_pb2.Turn] = []
    ev = make_event(story_dir, speakers=[("Alice", "host"), ("Bob", "guest")], labels={"run": "r1"})
    r = gen.generate(ev, on_turn=streamed.append)
    assert r.status == common_pb2.STATUS_OK and r.error == ""
    assert [t.speaker for t in r.dialogue.turns] == ["Alice", "Bob", "Alice", "Bob", "Alice"]
    assert list(streamed) == list(r.dialogue.turns)
    assert r.dialogue.text.startswith("Alice: Welcome back!")
    assert r.dialogue.turns[0].image_refs == [0] and 3 in r.dialogue.turns[3].image_refs
    assert r.backend == "openai" and r.input_mode == events_pb2.INPUT_MODE_PIXELS and r.attempts == 1
    assert r.usage.prompt_tokens == 100 and r.usage.completion_tokens > 0 and r.prompt_version == "v1"
    assert r.labels["run"] == "r1" and r.image_set_id == "set-1" and len(r.images) == 5
    # the engine got the images as data URIs, in story order, before the instruction
    content = engine.requests[0]["messages"][1]["content"]
    assert [c["type"] for c in content] == ["image_url"] * 5 + ["text"]
    assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert engine.requests[0]["seed"] == 7 and engine.requests[0]["stream"] is True


def test_malformed_then_retry_succeeds(story_dir, engine) -> None:
    engine.replies = [Reply("Speaker 1: I talk alone.\nSpeaker 1: Still alone."), Reply(GOOD_DIALOGUE)]
    r = _generator(story_dir, engine).generate(make_event(story_dir))
    assert r.status == common_pb2.STATUS_OK and r.attempts == 2
    assert any("attempt 1: malformed output: only one speaker" in w for w in r.warnings)
    retry_prompt = engine.requests[1]["messages"][1]["content"][-1]["text"]
    assert "could not be used: only one speaker" in retry_prompt and engine.requests[1]["seed"] == 8


def test_malformed_twice_is_failed_with_reason_never_empty_ok(story_dir, engine) -> None:
    engine.replies = [Reply("A lovely day at the beach."), Reply("Speaker 1: hi.\nSpeaker 5: who am I?")]
    r = _generator(story_dir, engine).generate(make_event(story_dir))
    assert r.status == common_pb2.STATUS_FAILED and r.attempts == 2
    assert r.error.startswith("malformed model output after 2 attempt(s): unknown speaker label(s): Speaker 5")
    assert len(r.dialogue.turns) == 0 and len(engine.requests) == 2


def test_truncated_output_is_repaired(story_dir, engine) -> None:
    engine.replies = [Reply(GOOD_DIALOGUE + "Speaker 2: and then we", finish_reason="length")]
    r = _generator(story_dir, engine).generate(make_event(story_dir))
    assert r.status == common_pb2.STATUS_OK and len(r.dialogue.turns) == 5
    assert any("unfinished last turn" in w for w in r.warnings)


def test_engine_400_is_failed_result(story_dir, engine) -> None:
    engine.replies = [Reply(status=400, body="prompt too long")]
    r = _generator(story_dir, engine).generate(make_event(story_dir))
    assert r.status == common_pb2.STATUS_FAILED and "HTTP 400" in r.error and "prompt too long" in r.error


def test_unknown_adapter_is_failed_not_base(story_dir, engine) -> None:
    r = _generator(story_dir, engine).generate(make_event(story_dir, adapter="nope@1"))
    assert r.status == common_pb2.STATUS_FAILED and r.error.startswith("adapter unavailable")
    assert r.adapter_id == "nope@1" and engine.requests == []


@pytest.mark.parametrize(("kw", "reason"), [
    (dict(n=0), "no images"),
    (dict(n=17), "17 images"),
    (dict(speakers=[("A", "")]), r"1 speaker\(s\)"),
    (dict(speakers=[(c, "") for c in "ABCDE"]), r"5 speaker\(s\)"),
    (dict(speakers=[("A", ""), ("a", "")]), "distinct"),
    (dict(target_words=10), "target_words"),
    (dict(language="not a language!"), "BCP-47"),
])
def test_bad_requests_are_invalid_argument(story_dir, engine, kw, reason) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        _generator(story_dir, engine).generate(make_event(story_dir, **kw))


def test_bad_images_are_invalid_argument(story_dir, engine, tmp_path) -> None:
    gen = _generator(story_dir, engine)
    ev = make_event(story_dir, n=2)
    ev.images[1].uri = (story_dir / "corrupt.png").as_uri()
    with pytest.raises(InvalidArgument, match=r"cannot be decoded|corrupt"):
        gen.generate(ev)
    outside = tmp_path / "x.png"
    outside.write_bytes((story_dir / "image_1.png").read_bytes())
    ev.images[1].uri = outside.as_uri()
    with pytest.raises(InvalidArgument, match="outside the allowed"):
        gen.generate(ev)
    ev.images[1].uri = "http://127.0.0.1:9/x.png"
    with pytest.raises(InvalidArgument, match=r"plain http|not in the allowed"):
        gen.generate(ev)
    ev.images[1].uri = (story_dir / "image_2.png").as_uri()
    ev.images[1].mime_type = "image/jpeg"
    with pytest.raises(InvalidArgument, match="declared image/jpeg"):
        gen.generate(ev)


def test_default_speakers_and_caption_mode(story_dir, engine) -> None:
    gen = _generator(story_dir, engine, text_only=True, text_input="captions")
    r = gen.generate(make_event(story_dir, n=3))
    assert r.input_mode == events_pb2.INPUT_MODE_CAPTIONS and r.status == common_pb2.STATUS_OK
    assert [s.name for s in r.dialogue.speakers] == ["Speaker 1", "Speaker 2"]
    assert not any(ref.HasField("perception") for ref in r.images)      # captions only: no perception ran
    content = engine.requests[0]["messages"][1]["content"]
    assert isinstance(content, str) and "Scene 3: a dog ran across the park" in content  # text only: a plain string
    ev = make_event(story_dir, n=2)
    ev.images[1].caption = ""
    with pytest.raises(InvalidArgument, match=r"no caption or alt text.*captions\+facts describes photos"):
        gen.generate(ev)
