"""`vispod judge` over a generated folder of story folders, with an OpenAI-compatible judge served locally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from judge_fake_apis import KEY, FakeAPI

from vispod.common.cli import main


def _longer_wins(prompt: str) -> str:
    """A length-biased judge: picks the longer dialogue."""
    a = prompt.split("Dialogue A:", 1)[1].split("Dialogue B:", 1)[0]
    b = prompt.split("Dialogue B:", 1)[1]
    return json.dumps({"winner": "A" if len(a) > len(b) else "B", "rationale": "more detail"})


def _stories(root: Path, n: int) -> Path:
    for i in range(n):
        d = root / f"story_{i:03d}"
        d.mkdir(parents=True)
        long_is_a = i % 3 != 0  # A is the longer one in 2 of 3 stories
        long, short = "Speaker 1: " + "and then we talked " * 40, "Speaker 1: short.\nSpeaker 2: ok."
        (d / "sys-a.txt").write_text(long if long_is_a else short)
        (d / "sys-b.txt").write_text(short if long_is_a else long)
        (d / "story.json").write_text(json.dumps({"images": [{"vist_caption": f"photo {i}"}]}))
    (root / "incomplete").mkdir()
    (root / "incomplete" / "sys-a.txt").write_text("x")
    return root


def test_cli_prints_the_table_and_writes_json(tmp_path, monkeypatch, capsys) -> None:
    pairs = _stories(tmp_path / "pairs", 9)
    out = tmp_path / "out" / "judge.json"
    with FakeAPI("openai", _longer_wins) as server:
        monkeypatch.setenv("VISPOD_JUDGE_OPENAI_BASE_URL", server.url + "/v1")
        monkeypatch.setenv("VISPOD_JUDGE_OPENAI_API_KEY", KEY)
        monkeypatch.setenv("VISPOD_JUDGE_PRICES", '{"gpt-test": {"input_per_mtok": 1, "output_per_mtok": 4}}')
        code = main(
            [
                "judge",
                "--pairs",
                str(pairs),
                "--a",
                "sys-a",
                "--b",
                "sys-b",
                "--judges",
                "openai:gpt-test",
                "--criteria",
                "naturalness",
                "narrative_depth",
                "--out",
                str(out),
            ]
        )
    assert code == 0
    printed = capsys.readouterr()
    assert "naturalness" in printed.out and "win(t=½)" in printed.out and KEY not in printed.out + printed.err
    doc = json.loads(out.read_text())
    assert doc["stories"] == 9 and doc["skipped_folders"] == ["incomplete"]
    cell = doc["report"]["cells"][0]
    assert (cell["wins"], cell["losses"], cell["ties"], cell["invalid"]) == (6, 3, 0, 0)
    assert cell["win_rate"] == pytest.approx(6 / 9)
    # the judge only rewards length: controlling for it leaves no real preference (≈ 0.5), far below raw
    assert cell["lc_win_rate"] == pytest.approx(0.5, abs=0.1) and cell["lc_slope"] > 0
    assert doc["usage"]["openai:gpt-test"]["cost_usd"] == pytest.approx(9 * 2 * 2 * (100 * 1 + 20 * 4) / 1e6)
    assert len(doc["per_story"][0]["verdicts"]) == 2


def test_cli_says_when_the_folder_is_absent(tmp_path, capsys) -> None:
    assert main(["judge", "--pairs", str(tmp_path / "nope"), "--a", "x", "--b", "y"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_cli_refuses_a_photo_whose_format_is_not_allowed(tmp_path, monkeypatch, capsys) -> None:
    """`image_1.jpg` holding TIFF bytes: the same format allow-list as every service, not a JPEG sent on."""
    from PIL import Image

    pairs = _stories(tmp_path / "pairs", 1)
    Image.new("RGB", (8, 8)).save(pairs / "story_000" / "image_1.jpg", format="TIFF")
    with FakeAPI("openai", _longer_wins) as server:
        monkeypatch.setenv("VISPOD_JUDGE_OPENAI_BASE_URL", server.url + "/v1")
        monkeypatch.setenv("VISPOD_JUDGE_OPENAI_API_KEY", KEY)
        code = main(["judge", "--pairs", str(pairs), "--a", "sys-a", "--b", "sys-b", "--judges", "openai:gpt-test",
                     "--criteria", "naturalness", "--out", str(tmp_path / "j.json")])
        assert server.requests == []  # nothing was sent to the judge
    assert code == 2
    assert "story_000: image 1: format TIFF is not allowed" in capsys.readouterr().err
