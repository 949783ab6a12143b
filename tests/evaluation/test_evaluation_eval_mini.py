"""`vispod eval` on a generated mini set: constructed transcripts with hand-computed paper-mode numbers, the real
metrics service in-process (tiny random CLIP), a scripted judge over real gRPC; Markdown, CSV, HTML checked."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from gate_scripted import ScriptedGenerator, ScriptedJudge, Servers

from vispod.common.cli import main as vispod
from vispod.v1 import events_pb2

ALPHA = "Speaker 1: one two three four\nSpeaker 2: five six\n"
BETA = "Speaker 1: a b\nSpeaker 2: c d\nSpeaker 1: e f\n"
# By hand (FACTS.md definitions). alpha: 10 words (labels count), 9 distinct bigrams of 9, turns of 4 and 2 words.
# beta: 12 words, bigrams 11 with ("speaker", "1") twice -> 10/11, three turns of 2 words.
EXPECTED = {
    "alpha": {"words": 10, "distinct_2": 1.0, "avg_turn_length": 3.0, "switch_rate": 1000 / 6, "num_turns": 2},
    "beta": {"words": 12, "distinct_2": 10 / 11, "avg_turn_length": 2.0, "switch_rate": 2000 / 6, "num_turns": 3},
}


@pytest.fixture
def mini_set(builtin_set: Path) -> Path:
    for folder in sorted(builtin_set.iterdir()):
        (folder / "alpha.txt").write_text(ALPHA)
        (folder / "beta.txt").write_text(BETA)
    return builtin_set


def test_eval_writes_markdown_csv_html_with_the_expected_numbers(mini_set: Path, tmp_path: Path, tiny_clip: str,
                                                                 servers: Servers) -> None:
    judge = ScriptedJudge(outcomes=[events_pb2.OUTCOME_A_WINS, events_pb2.OUTCOME_A_WINS, events_pb2.OUTCOME_TIE],
                          judges=("j1",))
    out = tmp_path / "report"
    rc = vispod(["eval", "--set", str(mini_set), "--systems", "alpha,beta", "--out", str(out), "--quiet",
                 "--clip-model", tiny_clip, "--clip-random-weights", "--judges", "j1", "--criteria", "naturalness",
                 "--judge-addr", servers.serve(judge)])
    assert rc == 0

    rows = list(csv.DictReader((out / "eval_per_story.csv").open()))
    assert len(rows) == 6
    for row in rows:
        for name, value in EXPECTED[row["system"]].items():
            assert float(row[f"paper_{name}"]) == pytest.approx(value), (row["system"], name)
        assert row["grounding_random_weights"] == "true"
        assert 0 <= float(row["grounding_clipscore"]) <= 100
    beta = next(r for r in rows if r["system"] == "beta")
    assert float(beta["robust_num_turns"]) == 3 and float(beta["robust_num_speakers"]) == 2

    summary = {(r["section"], r["metric"], r["system"]): r for r in csv.DictReader((out / "eval_summary.csv").open())}
    assert float(summary[("paper", "switch_rate", "beta")]["mean"]) == pytest.approx(333.333333)
    assert summary[("paper", "words", "alpha")]["stories"] == "3"
    # the sections the metrics service adds (names from the protos): alpha's 2 turns are too few for a podcast
    assert float(summary[("text", "format.too_few_turns", "alpha")]["mean"]) == 1.0
    assert float(summary[("text", "naturalness.responsiveness", "beta")]["mean"]) > -1.0

    doc = json.loads((out / "eval.json").read_text())
    assert doc["grounding_random_weights"] is True
    assert doc["means"]["alpha"]["paper"]["distinct_2"] == pytest.approx(1.0)
    for system in ("alpha", "beta"):  # the reported mean is the mean of the per-story scores in the CSV
        per_story = [float(r["grounding_clipscore"]) for r in rows if r["system"] == system]
        assert doc["means"][system]["grounding"]["clipscore"] == pytest.approx(sum(per_story) / len(per_story))
    [cell] = doc["judges"]
    assert (cell["judge"], cell["criterion"], cell["wins"], cell["ties"], cell["losses"]) == ("j1", "naturalness",
                                                                                            2, 1, 0)
    assert cell["win_rate"] == pytest.approx(2.5 / 3)
    assert [r.criteria for r in judge.requests] == [["naturalness"]] * 3
    assert {r.a.system for r in judge.requests} == {"alpha"}

    md = (out / "eval.md").read_text()
    assert "| Words | 10.0 | 12.0 |" in md.replace("  ", " ")
    assert "| Switch rate (/1,000 words) | 166.7 | 333.3 |" in md
    assert "RANDOM" in md and "random weights" in md
    assert "## Text metrics" in md and "| format.valid |" in md
    html = (out / "eval.html").read_text()
    assert html.count("data:image/png;base64,") >= 4  # style, per-story, grounding, judges
    assert "RANDOM" in html and "Read this first" in html


def test_eval_uses_random_clip_weights_only_when_asked(mini_set: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert vispod(["eval", "--set", str(mini_set), "--systems", "alpha,beta", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--clip-weights" in err and "--clip-random-weights" in err and "--no-grounding" in err
    assert not (out / "eval.md").exists()


def test_eval_says_when_the_set_is_absent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vispod(["eval", "--set", str(tmp_path / "nope"), "--systems", "a,b", "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_eval_generates_through_the_generator_service_first(builtin_set: Path, tmp_path: Path, tiny_clip: str,
                                                            servers: Servers) -> None:
    gen = ScriptedGenerator()
    gen.register("pod@1")
    gen.failing.add("broken@1")
    out = tmp_path / "report"
    rc = vispod(["eval", "--set", str(builtin_set), "--systems", "cand", "--generate", "cand=pod@1",
                 "--generate", "basemodel=base,broken=broken@1", "--generator-addr", servers.serve(gen),
                 "--out", str(out), "--quiet", "--clip-model", tiny_clip, "--clip-random-weights"])
    assert rc == 0
    assert sorted(gen.generated) == ["base"] * 3 + ["broken@1"] * 3 + ["pod@1"] * 3
    written = sorted(p.relative_to(out).as_posix() for p in (out / "transcripts").rglob("*.txt"))
    assert written == [f"transcripts/story_{9000 + i}/{s}.txt" for i in range(3) for s in ("basemodel", "cand")]
    assert not list(builtin_set.rglob("*.txt"))  # never written into the set
    rows = list(csv.DictReader((out / "eval_per_story.csv").open()))
    assert sorted(r["system"] for r in rows) == ["basemodel"] * 3 + ["cand"] * 3
    assert all(float(r["paper_num_turns"]) == 2 for r in rows)
    md = (out / "eval.md").read_text()
    assert "generation failed: FAILED" not in md and "broken: 3 of 3 stories have no transcript" in md
    assert md.count("generation failed") == 3
