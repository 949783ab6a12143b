"""VIST SIS/DII reading, seeded sampling, and the vist-podcast-50 folder layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vispod.dataset.vist import (
    DEFAULT_EVAL_ROOT,
    DatasetAbsent,
    VistReport,
    load_eval_stories,
    load_vist_json,
    sample_stories,
)


def _sis(path: Path, stories: int, tier: str = "story-in-sequence") -> Path:
    annotations, images = [], []
    for s in range(stories):
        for k in reversed(range(5)):  # out of order on purpose
            photo = f"{1000 + s * 10 + k}"
            images.append({"id": photo, "album_id": f"al{s}", "url_o": f"https://example.org/{photo}.jpg"})
            ann = {
                "album_id": f"al{s}",
                "photo_flickr_id": photo,
                "story_id": str(40 + s),
                "tier": tier,
                "text": f"story {s} photo {k} .",
                "original_text": f"Story {s} photo {k}.",
            }
            ann["worker_arranged_photo_order" if tier == "story-in-sequence" else "photo_order_in_story"] = k
            annotations.append([ann])
    annotations.append(
        [
            {
                "album_id": "x",
                "story_id": "99",
                "photo_flickr_id": "1",
                "text": "lonely",
                "worker_arranged_photo_order": 0,
            }
        ]
    )  # a story of one photo
    annotations.append(["not an object"])
    path.write_text(json.dumps({"images": images, "albums": [], "annotations": annotations}))
    return path


def test_sis_stories_are_five_photos_in_order(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "1002.jpg").write_bytes(b"jpeg")
    report = VistReport()
    stories = load_vist_json(_sis(tmp_path / "test.story-in-sequence.json", 4), tmp_path / "imgs", report)
    assert [s.story_id for s in stories] == ["40", "41", "42", "43"]
    first = stories[0]
    assert first.captions == [f"story 0 photo {k} ." for k in range(5)]
    assert next(p.url for p in first.photos) == "https://example.org/1000.jpg"
    assert first.photos[2].path == tmp_path / "imgs" / "1002.jpg" and first.photos[0].path is None
    assert dict(report.malformed) == {"story_not_5_photos": 1, "annotation_not_an_object": 1}


def test_dii_is_read_with_its_own_order_field(tmp_path: Path) -> None:
    stories = load_vist_json(_sis(tmp_path / "test.description-in-isolation.json", 2, "descriptions-in-isolation"))
    assert len(stories) == 2 and stories[1].captions[4] == "story 1 photo 4 ."


def test_sampling_is_seeded_and_order_independent(tmp_path: Path) -> None:
    stories = load_vist_json(_sis(tmp_path / "sis.json", 12))
    a = sample_stories(stories, 5, seed=42)
    assert [s.story_id for s in a] == [s.story_id for s in sample_stories(list(reversed(stories)), 5, seed=42)]
    assert [s.story_id for s in a] != [s.story_id for s in sample_stories(stories, 5, seed=7)]


def test_eval_folder_layout(tmp_path: Path) -> None:
    story = tmp_path / "story_123"
    story.mkdir()
    (story / "image_1.jpg").write_bytes(b"jpeg")
    (story / "model-a.txt").write_text("Speaker 1: hello")
    (story / "story.json").write_text(
        json.dumps(
            {
                "vist_story_id": "123",
                "complete": False,
                "transcripts": {"model-a": "model-a.txt"},
                "images": [
                    {
                        "position": p,
                        "file": "image_1.jpg" if p == 1 else None,
                        "flickr_photo_id": str(p),
                        "vist_caption": f"caption {p}",
                    }
                    for p in range(1, 6)
                ],
            }
        )
    )
    (stories,) = [load_eval_stories(tmp_path)]
    assert len(stories) == 1 and stories[0].image_paths == [story / "image_1.jpg"]
    assert [i.caption for i in stories[0].images][4] == "caption 5"
    assert stories[0].transcripts == {"model-a": "Speaker 1: hello"}
    assert load_eval_stories(tmp_path, complete_only=True) == []
    with pytest.raises(DatasetAbsent, match="not bundled"):
        load_eval_stories(tmp_path / "nowhere")


def test_shared_vist_podcast_50(vist_podcast_50: Path) -> None:
    assert vist_podcast_50 == DEFAULT_EVAL_ROOT  # the loader's default is the one dataset setting
    stories = load_eval_stories()
    complete = [s for s in stories if s.complete]
    assert len(stories) == 51 and len(complete) == 37
    assert all(len(s.image_paths) == 5 for s in complete)
    assert sum(len(s.transcripts) == 2 for s in stories) == 50  # story 49044 comes without transcripts
