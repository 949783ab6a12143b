"""The mini-paper's held-out stories (every story with 5 captions, photos present or not) and its per-story
generation cache (a rerun generates only the stories it lacks)."""

import json
from pathlib import Path

from vispod.devkit.mini_paper_loop import HeldOutStory, cached_generations, held_out_stories
from vispod.evaluation.splits import Split
from vispod.v1 import events_pb2


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


def test_stories_need_five_captions_not_five_photos(tmp_path):
    _story(tmp_path, "1")
    _story(tmp_path, "2", photos=3)          # captions all there: kept, missing photos named by Flickr id
    _story(tmp_path, "3", captions=4)        # a photo without caption: the text model cannot discuss it
    stories = held_out_stories(tmp_path, Split(eval=("1", "2", "3"), train=("9",), rule="test"))
    assert [s.story_id for s in stories] == ["1", "2"]
    second = stories[1]
    assert second.captions == tuple(f"caption 2 {i} ." for i in range(5))
    assert [r.caption for r in second.refs] == list(second.captions)
    assert second.refs[0].uri.startswith("file://") and second.refs[0].uri.endswith("image_1.jpg")
    assert second.refs[4].uri == "https://www.flickr.com/photo.gne?id=904"


def test_a_rerun_generates_only_the_stories_it_lacks_and_a_new_key_starts_over(tmp_path):
    path = tmp_path / "gens.json"
    asked: list[list[str]] = []

    def produce(todo: list[HeldOutStory]) -> dict[str, events_pb2.DialogueGenerated]:
        asked.append([s.story_id for s in todo])
        return {s.story_id: events_pb2.DialogueGenerated(image_set_id=f"set-{s.story_id}") for s in todo}

    def story(sid: str) -> HeldOutStory:
        return HeldOutStory(sid, ("a .",), ())

    first = cached_generations(path, "k1", [story("1"), story("2")], produce)
    assert list(first) == ["1", "2"] and first["2"].image_set_id == "set-2"
    again = cached_generations(path, "k1", [story("2"), story("3"), story("1")], produce)
    assert asked == [["1", "2"], ["3"]]
    assert list(again) == ["2", "3", "1"] and again["3"].image_set_id == "set-3"
    cached_generations(path, "k2", [story("1")], produce)
    assert asked[-1] == ["1"]
