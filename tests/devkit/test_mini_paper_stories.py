"""The mini-paper's photo stories (5 photos and 5 captions, or refused), what each plan system's request carries,
what the evaluation reads of a dialogue, the per-story generation cache and the committed dialogue archive."""

import gzip
import json
from pathlib import Path

import pytest

from vispod.devkit.mini_paper_loop import _check_test_split_unread, _samples
from vispod.devkit.mini_paper_runs import (
    PhotoStory,
    Sample,
    StoryRefused,
    archive_row,
    cached_generations,
    photo_stories,
    request,
    story_output,
    write_archive,
)
from vispod.evaluation.plan import load_plan, read_test_split
from vispod.v1 import common_pb2, events_pb2


def _story(root: Path, sid: str, *, captions: int = 5, photos: int = 5) -> None:
    folder = root / f"story_{sid}"
    folder.mkdir(parents=True)
    images = []
    for i in range(5):
        name = f"image_{i + 1}.jpg" if i < photos else None
        if name:
            (folder / name).write_bytes(b"\xff\xd8\xff\xe0 jpeg")
        images.append({"position": i + 1, "file": name, "flickr_photo_id": f"90{i}",
                       "vist_caption": f"caption {sid} {i} ." if i < captions else None})
    (folder / "story.json").write_text(json.dumps({"vist_story_id": sid, "images": images}))


def test_photo_mode_needs_five_photos_and_five_captions_and_refuses_otherwise(tmp_path: Path) -> None:
    _story(tmp_path, "1")
    _story(tmp_path, "2", photos=3)
    _story(tmp_path, "3", captions=4)
    [one] = photo_stories(tmp_path, ["1"])
    assert one.captions == tuple(f"caption 1 {i} ." for i in range(5)) and one.photos[0].name == "image_1.jpg"
    with pytest.raises(StoryRefused, match=r"story 2: .* 3 photos and 5 captions"):
        photo_stories(tmp_path, ["1", "2"])
    with pytest.raises(StoryRefused, match=r"story 3: .* 5 photos and 4 captions"):
        photo_stories(tmp_path, ["3"])


def test_facts_systems_send_the_photos_without_captions_the_upper_bound_with_them(tmp_path: Path) -> None:
    _story(tmp_path, "1")
    [story] = photo_stories(tmp_path, ["1"])
    plan = load_plan()
    tuned, upper = plan.system("tuned"), plan.system("upper_bound")
    facts_req = request(story, Sample(tuned, 1234, "mini-paper@v-1", 17), 700)
    assert [r.caption for r in facts_req.images] == [""] * 5
    assert facts_req.images[0].uri.startswith("file://") and facts_req.adapter == "mini-paper@v-1"
    assert facts_req.target_words == 700 and facts_req.seed == 17
    caption_req = request(story, Sample(upper, 1234, "mini-paper@v-1", 17), 700)
    assert [r.caption for r in caption_req.images] == list(story.captions)
    base_req = request(story, Sample(plan.system("small_base"), None, "base", 18), 700)
    assert base_req.adapter == "" and base_req.image_set_id != facts_req.image_set_id


def test_samples_follow_the_plan_paired_adapters_and_seeds_or_the_first() -> None:
    plan = load_plan()
    ids = {t: f"a{t}" for t in plan.adapter_training_seeds}
    tuned = _samples(plan, plan.system("tuned"), ids)
    assert [(s.adapter_seed, s.seed) for s in tuned] == list(zip(plan.adapter_training_seeds, plan.seeds,
                                                                 strict=True))
    assert [s.adapter_id for s in tuned] == [ids[t] for t in plan.adapter_training_seeds]
    assert [(s.adapter_seed, s.seed) for s in _samples(plan, plan.system("large_base"), ids)] == [(None, plan.seeds[0])]
    first = [(plan.adapter_training_seeds[0], plan.seeds[0])]
    assert [(s.adapter_seed, s.seed) for s in _samples(plan, plan.system("upper_bound"), ids)] == first
    assert [(s.adapter_seed, s.seed) for s in _samples(plan, plan.system("tuned_whole"), ids)] == first
    assert {s.adapter_id for s in _samples(plan, plan.system("bigger_base"), ids)} == {"base"}
    assert len({s.key for s in tuned}) == len(tuned)


def _facts_result() -> events_pb2.DialogueGenerated:
    images = []
    for i in range(5):
        ref = common_pb2.ImageRef(uri=f"file:///p{i}.jpg")
        ref.perception.objects.add(label="dog" if i == 0 else "car", score=0.9)
        images.append(ref)
    return events_pb2.DialogueGenerated(
        image_set_id="x", status=common_pb2.STATUS_OK, images=images, input_mode=events_pb2.INPUT_MODE_FACTS,
        dialogue=common_pb2.Dialogue(text="Speaker 1: a dog.", turns=[
            common_pb2.Turn(speaker="Speaker 1", text="a dog.", image_refs=[0])]))


def test_the_evaluation_reads_the_facts_the_model_saw_and_the_human_captions_as_reference() -> None:
    story = PhotoStory("7", tuple(Path(f"/p{i}.jpg") for i in range(5)), tuple(f"human caption {i}" for i in range(5)))
    plan = load_plan()
    out = story_output(story, _facts_result(), plan.system("tuned"), 700)
    assert out.captions == list(story.captions)            # the reference
    assert "human caption" not in out.prompt and "dog" in out.prompt    # the model's instruction: facts only
    assert out.perception[0]["objects"][0]["label"] == "dog" and out.turns == [("Speaker 1", "a dog.", [0])]
    upper = story_output(story, _facts_result(), plan.system("upper_bound"), 700)
    assert "human caption 3" in upper.prompt and upper.perception == []


def test_a_rerun_generates_only_the_stories_it_lacks_and_a_new_key_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "gens.json"
    asked: list[list[str]] = []

    def produce(todo: list[PhotoStory]) -> dict[str, events_pb2.DialogueGenerated]:
        asked.append([s.story_id for s in todo])
        return {s.story_id: events_pb2.DialogueGenerated(image_set_id=f"set-{s.story_id}") for s in todo}

    def story(sid: str) -> PhotoStory:
        return PhotoStory(sid, (), ())

    first = cached_generations(path, "k1", [story("1"), story("2")], produce)
    assert list(first) == ["1", "2"] and first["2"].image_set_id == "set-2"
    again = cached_generations(path, "k1", [story("2"), story("3"), story("1")], produce)
    assert asked == [["1", "2"], ["3"]]
    assert list(again) == ["2", "3", "1"] and again["3"].image_set_id == "set-3"
    cached_generations(path, "k2", [story("1")], produce)
    assert asked[-1] == ["1"]


def test_an_earlier_plan_versions_dialogues_are_reused_only_under_the_same_key(tmp_path: Path) -> None:
    """A new plan version regenerates what it changed (the tuned model's new adapters) and reuses the dialogues of
    systems it did not change; the earlier version's file is never written."""
    asked: list[list[str]] = []

    def produce(todo: list[PhotoStory]) -> dict[str, events_pb2.DialogueGenerated]:
        asked.append([s.story_id for s in todo])
        return {s.story_id: events_pb2.DialogueGenerated(image_set_id=f"new-{s.story_id}") for s in todo}

    stories = [PhotoStory(sid, (), ()) for sid in ("1", "2")]
    v1 = tmp_path / "v1" / "gens.json"
    v1.parent.mkdir()
    v1.write_text(json.dumps({"key": "base-key", "dialogues": {"1": {"imageSetId": "v1-1"}}}))
    before = v1.read_bytes()
    got = cached_generations(tmp_path / "v2" / "gens.json", "base-key", stories, produce, earlier=[v1])
    assert got["1"].image_set_id == "v1-1" and got["2"].image_set_id == "new-2" and asked == [["2"]]
    retrained = cached_generations(tmp_path / "v2" / "tuned.json", "new-adapter-key", stories, produce, earlier=[v1])
    assert [d.image_set_id for d in retrained.values()] == ["new-1", "new-2"] and asked[-1] == ["1", "2"]
    assert v1.read_bytes() == before
    again = cached_generations(tmp_path / "v2" / "gens.json", "base-key", stories, produce, earlier=[v1])
    assert again["1"].image_set_id == "v1-1" and len(asked) == 2   # now kept in v2's own file


def test_the_dialogue_archive_is_gzipped_json_lines_with_identical_bytes_for_identical_rows(tmp_path: Path) -> None:
    story = PhotoStory("7", tuple(Path(f"/p{i}.jpg") for i in range(5)), tuple("c" for _ in range(5)))
    row = archive_row(story, Sample(load_plan().system("tuned"), 1234, "mini-paper@v-1", 17), _facts_result())
    a = write_archive(tmp_path / "a" / "dialogues.jsonl.gz", [row, row])
    b = write_archive(tmp_path / "b" / "dialogues.jsonl.gz", [row, row])
    assert a.read_bytes() == b.read_bytes()
    lines = gzip.decompress(a.read_bytes()).decode().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 2 and first["input_mode"] == "INPUT_MODE_FACTS" and first["adapter_seed"] == 1234
    assert first["facts"][0]["objects"][0]["label"] == "dog" and first["turns"][0]["image_refs"] == [0]


def test_a_read_test_split_refuses_a_second_run_unless_a_reason_is_given(tmp_path: Path) -> None:
    plan = load_plan()
    ledger = tmp_path / "test-split-reads.jsonl"
    assert _check_test_split_unread(plan, ledger, "") is None
    read_test_split(plan, ledger)
    assert "was read at" in (_check_test_split_unread(plan, ledger, "") or "")
    assert _check_test_split_unread(plan, ledger, "the generator crashed mid-run") is None


def test_a_few_shot_systems_prompt_holds_the_worked_example_it_was_shown() -> None:
    story = PhotoStory("7", tuple(Path(f"/p{i}.jpg") for i in range(5)), tuple(f"human caption {i}" for i in range(5)))
    plan = load_plan()
    gemma = story_output(story, _facts_result(), plan.system("bigger_base"), 700)
    smol = story_output(story, _facts_result(), plan.system("small_base"), 700)
    assert plan.system("bigger_base").few_shot and gemma.prompt.endswith(smol.prompt.split("\n", 1)[1])
    assert len(gemma.prompt) > len(smol.prompt) + 200 and "human caption" not in gemma.prompt
