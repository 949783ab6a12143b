"""SPoRC reading (both layouts, malformed rows counted) and excerpt selection."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest

from vispod.dataset.excerpts import (
    ExcerptConfig,
    ExcerptStats,
    episode_excerpts,
    iter_excerpts,
    merge_turns,
    normalise_speakers,
)
from vispod.dataset.scoring import HeuristicScorer
from vispod.dataset.sporc import LoadReport, SporcEpisode, SporcTurn, detect_layout, iter_episodes
from vispod.dataset.sporc_synthetic import make_episodes, write_jsonl_layout, write_parquet_layout


def _read(path: Path) -> tuple[list[SporcEpisode], LoadReport]:
    report = LoadReport()
    return list(iter_episodes(path, report)), report


def test_both_layouts_give_the_same_episodes(sporc_jsonl: Path, sporc_parquet: Path) -> None:
    assert detect_layout(sporc_jsonl) == "jsonl"
    assert detect_layout(sporc_parquet) == "parquet"
    from_jsonl, r1 = _read(sporc_jsonl)
    from_parquet, r2 = _read(sporc_parquet)
    assert r1.malformed_total == 0 and r2.malformed_total == 0
    assert len(from_jsonl) == len(from_parquet) == 8
    by_id = {e.episode_id: e for e in from_parquet}
    for episode in from_jsonl:
        other = by_id[episode.episode_id]  # episode_id = md5(mp3url)[:16] in both layouts
        assert other.mp3url == episode.mp3url
        assert [(t.speaker, t.text) for t in other.turns] == [(t.speaker, t.text) for t in episode.turns]
        assert episode.language == "en" and other.language is None  # the Parquet layout has no episode metadata
    # The parquet layout also reads from the turns/ folder itself.
    assert len(_read(sporc_parquet / "turns")[0]) == 8


def test_jsonl_malformed_rows_are_counted_by_reason(tmp_path: Path) -> None:
    episodes, report = _read(write_jsonl_layout(tmp_path / "bad", make_episodes(3), malformed=True))
    assert dict(report.malformed) == {
        "episode_invalid_json": 1,
        "episode_missing_mp3url": 1,
        "turn_invalid_json": 1,
        "turn_missing_text": 2,
        "turn_bad_speaker": 1,
        "turns_without_episode": 1,
    }
    assert report.as_dict()["malformed_total"] == 7
    assert report.examples["turn_missing_text"] == ["speakerTurnData.jsonl.gz:6", "speakerTurnData.jsonl.gz:7"]
    assert len(episodes) == 3
    assert len(episodes[0].turns) == 60 - 3  # the three bad turns of episode 0, and nothing else


def test_parquet_malformed_rows_are_counted_by_reason(tmp_path: Path) -> None:
    episodes, report = _read(write_parquet_layout(tmp_path / "bad", make_episodes(3), malformed=True))
    assert dict(report.malformed) == {"turn_missing_text": 2, "turn_bad_speaker": 1, "unreadable_parquet": 1}
    assert len(episodes) == 3 and sum(len(e.turns) for e in episodes) == 3 * 60 - 3


def test_non_contiguous_turns_and_episodes_without_turns_are_reported(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    with gzip.open(folder / "episodeLevelData.jsonl.gz", "wt") as fh:
        for url in ("a.mp3", "b.mp3", "c.mp3"):
            fh.write(json.dumps({"mp3url": url, "language": "en"}) + "\n")
    with gzip.open(folder / "speakerTurnData.jsonl.gz", "wt") as fh:
        for url, text in (("a.mp3", "one"), ("b.mp3", "two"), ("a.mp3", "late")):
            fh.write(json.dumps({"mp3url": url, "speaker": ["SPEAKER_00"], "turnText": text}) + "\n")
    episodes, report = _read(folder)
    assert [e.mp3url for e in episodes] == ["a.mp3", "b.mp3"]
    assert dict(report.malformed) == {"turns_not_contiguous": 1, "episode_without_turns": 1}


def test_missing_source_says_what_it_expected(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="episodeLevelData"):
        _read(tmp_path)


def test_turns_are_merged_and_speakers_relabelled() -> None:
    merged = merge_turns([("B", "hi  there"), ("B", "again"), ("A", " "), ("A", "yo"), ("B", "ok")])
    assert merged == [("B", "hi there again"), ("A", "yo"), ("B", "ok")]
    assert normalise_speakers(merged) == (("Speaker 1", "hi there again"), ("Speaker 2", "yo"), ("Speaker 1", "ok"))


def test_excerpts_fit_the_word_and_speaker_bounds(sporc_jsonl: Path) -> None:
    stats = ExcerptStats()
    excerpts = list(iter_excerpts(iter_episodes(sporc_jsonl), ExcerptConfig(), stats=stats))
    assert len(excerpts) == 8 and stats.excerpts == 8
    for ex in excerpts:
        assert 600 <= ex.words <= 800
        assert ex.words == len(" ".join(t for _, t in ex.turns).split())
        assert ex.num_speakers >= 2
        labels = [s for s, _ in ex.turns]
        assert labels[0] == "Speaker 1"
        assert set(labels) == {f"Speaker {i}" for i in range(1, ex.num_speakers + 1)}
        assert all(a != b for a, b in itertools.pairwise(labels)), "same-speaker turns not merged"
        assert "promo code" not in ex.text  # the scorer steers away from the ad reads
        assert ex.text.startswith("Speaker 1: ")


def _episode(turns: list[tuple[str, str]], **meta: object) -> SporcEpisode:
    return SporcEpisode(episode_id="e1", mp3url="e1.mp3", turns=[SporcTurn(s, t) for s, t in turns], **meta)


def test_filters_reject_by_reason() -> None:
    talk = [("A" if i % 2 else "B", "we walked along the beach at sunset " * 5) for i in range(60)]
    cfg, scorer = ExcerptConfig(), HeuristicScorer()
    stats = ExcerptStats()
    assert episode_excerpts(_episode(talk, language="de"), cfg, scorer, stats) == []
    assert episode_excerpts(_episode(talk, language="en", explicit=True), cfg, scorer, stats) == []
    assert episode_excerpts(_episode(talk, overlap_prop_duration=0.5), cfg, scorer, stats) == []
    assert episode_excerpts(_episode([("A", "word " * 700)]), cfg, scorer, stats) == []  # one speaker only
    assert dict(stats.rejected) == {"language": 1, "explicit": 1, "overlap": 1, "no_window": 1}
    assert len(episode_excerpts(_episode(talk, language="en-US"), cfg, scorer, stats)) == 1
    many = episode_excerpts(_episode(talk), ExcerptConfig(max_per_episode=3), scorer)
    assert len(many) == 3
    spans = sorted(e.turn_range for e in many)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), "excerpts overlap"


def test_episode_share_is_seeded_and_stable(sporc_jsonl: Path) -> None:
    def ids(seed: int) -> list[str]:
        return [
            e.episode_id
            for e in iter_excerpts(iter_episodes(sporc_jsonl), ExcerptConfig(), seed=seed, episode_share=0.5)
        ]

    assert ids(3) == ids(3)
    assert 0 < len(ids(3)) < 8


def test_chitchat_json_reads_as_episodes(tmp_path: Path) -> None:
    """The chitchat-dataset format (real chats, an offline stand-in); malformed groups are counted."""
    line = "we walked to the old harbour and watched the red boats come in"
    conv = {
        "messages": [[{"text": f"{line} {i}", "sender": "a" if i % 2 else "b", "timestamp": ""}] for i in range(60)]
        + [[], [{"text": 1, "sender": "a"}]],
        "prompt": "p",
    }
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"c2": conv, "c1": {"oops": True}}))
    assert detect_layout(path) == "chitchat"
    episodes, report = _read(path)
    assert [e.episode_id for e in episodes] == ["c2"] and len(episodes[0].turns) == 60
    assert dict(report.malformed) == {
        "conversation_without_messages": 1,
        "empty_message_group": 1,
        "bad_message_group": 1,
    }
    (excerpt,) = episode_excerpts(episodes[0], ExcerptConfig(), HeuristicScorer())
    assert excerpt.num_speakers == 2 and 600 <= excerpt.words <= 800
