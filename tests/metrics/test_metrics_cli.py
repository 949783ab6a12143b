"""`vispod metrics style|grounding`: one JSON object per file, random weights announced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vispod.common.cli import main
from vispod.metrics.clip_model import RANDOM_WEIGHTS_NOTE, ClipBundle

PAPER_KEYS = {"file", "mode", "words", "distinct_1", "distinct_2", "avg_turn_length", "switch_rate", "num_turns"}


@pytest.fixture
def transcripts(tmp_path: Path) -> list[Path]:
    a = tmp_path / "a.txt"
    a.write_text("Speaker 1: Hello there, how are you?\nSpeaker 2: Fine, thanks. Look at the harbour.\n")
    b = tmp_path / "b.txt"
    b.write_text("**Host 1 (Alex):** Welcome back.\n\n**Host 2 (Sam):** Great to be here.\n")
    return [a, b]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_style_paper_and_robust(capsys: pytest.CaptureFixture[str], transcripts: list[Path]) -> None:
    code, rows, _ = run(capsys, "metrics", "style", "--mode", "paper", *map(str, transcripts))
    assert code == 0 and [r["file"] for r in rows] == [str(p) for p in transcripts]
    assert all(set(r) == PAPER_KEYS for r in rows)
    assert [r["num_turns"] for r in rows] == [2, 0]
    code, rows, _ = run(capsys, "metrics", "style", *map(str, transcripts))
    assert [r["num_turns"] for r in rows] == [2, 2]
    assert rows[0]["mode"] == "robust" and {"num_speakers", "speaker_balance", "image_mention_rate"} <= set(rows[0])


def test_style_reports_unreadable_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, rows, _ = run(capsys, "metrics", "style", str(tmp_path / "missing.txt"))
    assert code == 1 and rows[0]["file"].endswith("missing.txt") and "error" in rows[0]


def test_grounding_says_weights_are_random(capsys: pytest.CaptureFixture[str], clip_bundle: ClipBundle,
                                          transcripts: list[Path], image_dir: Path) -> None:
    code, rows, err = run(capsys, "metrics", "grounding", "--random-weights", "--clip-model", clip_bundle.name,
                          "--dialogue", str(transcripts[0]), str(image_dir / "img0.png"), str(image_dir / "img1.png"),
                          "--distractor", str(image_dir / "img2.png"))
    assert code == 0
    (row,) = rows
    assert row["random_weights"] is True and row["note"] == RANDOM_WEIGHTS_NOTE and RANDOM_WEIGHTS_NOTE in err
    assert len(row["per_image_max"]) == 2 and row["num_windows"] == 1
