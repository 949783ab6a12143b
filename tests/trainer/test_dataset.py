"""A bad pairs folder stops the run with an error naming the line and the problem, before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vispod.devkit.testing.sample_pairs import write_sample_pairs
from vispod.trainer.dataset import DatasetError, dataset_hash, load_pairs


def _rewrite(root: Path, line: int, change) -> None:
    rows = (root / "pairs.jsonl").read_text().splitlines()
    obj = json.loads(rows[line - 1])
    rows[line - 1] = change(obj) if callable(change) else change
    rows[line - 1] = rows[line - 1] if isinstance(rows[line - 1], str) else json.dumps(rows[line - 1])
    (root / "pairs.jsonl").write_text("\n".join(rows) + "\n")


def _set(obj: dict, **kw) -> dict:
    obj.update(kw)
    return obj


def test_good_folder_loads_in_order(pairs_dir: Path) -> None:
    pairs = load_pairs(pairs_dir)
    assert [p.line for p in pairs] == [1, 2, 3, 4]
    first = pairs[0]
    assert [p.name for p in first.images] == [f"p0000_{k}.png" for k in range(5)]
    assert first.prompt_parts[:5] == (0, 1, 2, 3, 4) and isinstance(first.prompt_parts[5], str)
    assert first.dialogue.startswith("Speaker 1:")


def _dialogue(obj: dict, value: str) -> dict:
    obj["conversations"][1]["value"] = value
    return obj


@pytest.mark.parametrize("change, message", [
    (lambda o: (Path(o["_root"]) / o["image"][2]).unlink() or o, "is missing"),
    (lambda o: _dialogue(o, "   \n "), "dialogue) is empty"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (lambda o: _set(o, image=o["image"][:4]), "expected 5 images, found 4"),
    (lambda o: _set(o, conversations=o["conversations"][:1]), "one 'human' turn then one 'gpt' turn"),
    (lambda o: _set(o, conversations=[{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]),
     "one 'human' turn then one 'gpt' turn"),
    (lambda o: _set(o, conversations="hello"), "'conversations' must be a list"),
    (lambda o: _set(o, image=[1, 2, 3, 4, 5]), "'image' must be a list"),
    (lambda o: _set(o, image=["../../etc/passwd", *o["image"][1:]]), "leaves the pairs folder"),
])
def test_bad_pair_names_line_and_problem(pairs_dir: Path, change, message: str) -> None:
    def with_root(obj: dict) -> dict:
        obj["_root"] = str(pairs_dir)
        out = change(obj)
        out.pop("_root", None)
        return out

    _rewrite(pairs_dir, 3, with_root if callable(change) else change)
    with pytest.raises(DatasetError) as err:
        load_pairs(pairs_dir)
    assert "pairs.jsonl:3:" in str(err.value) and message in str(err.value)


def test_image_tag_count_must_match_images(pairs_dir: Path) -> None:
    def fewer_tags(obj: dict) -> dict:
        obj["conversations"][0]["value"] = "<image><image>\nDescribe."
        return obj

    _rewrite(pairs_dir, 2, fewer_tags)
    with pytest.raises(DatasetError, match=r"pairs.jsonl:2: the human turn has 2 <image> tags but the pair lists 5"):
        load_pairs(pairs_dir)


def test_unreadable_image(pairs_dir: Path) -> None:
    (pairs_dir / "images" / "p0001_0.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"pairs.jsonl:2: image 'images/p0001_0.png' is not a readable image"):
        load_pairs(pairs_dir)


def test_missing_or_empty_pairs_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"pairs\.jsonl: missing"):
        load_pairs(tmp_path)
    (tmp_path / "pairs.jsonl").write_text("\n\n")
    with pytest.raises(DatasetError, match="no pairs"):
        load_pairs(tmp_path)


def test_dataset_hash_prefers_builder_manifest_else_hashes_content(tmp_path: Path) -> None:
    root = write_sample_pairs(tmp_path / "a", n=2, manifest=False)
    pairs = load_pairs(root)
    h1 = dataset_hash(root, pairs)
    assert len(h1) == 64 and h1 == dataset_hash(root, pairs)
    (root / "images" / "p0001_4.png").write_bytes((root / "images" / "p0000_0.png").read_bytes())
    assert dataset_hash(root, pairs) != h1  # any image change changes the hash
    (root / "manifest.json").write_text(json.dumps({"manifest_sha256": "AB" * 32}))
    assert dataset_hash(root, pairs) == "ab" * 32
