"""SPoRC (Structured Podcast Research Corpus) reader for both published layouts.

SPoRC is gated and research-only: the project never bundles it; point `--sporc` at your own copy.

Layouts (detected from the folder given):
- JSONL.gz pair: `episodeLevelData.jsonl.gz` (one episode per line) and `speakerTurnData.jsonl.gz`
  (one turn per line), joined on `mp3url`. Turns are streamed: the turns of one episode must be
  contiguous in the file (they are in the published dump); turns of an episode seen again after its
  group closed are reported as `turns_not_contiguous`. Plain `.jsonl` files are read too.
- Parquet: `turns/podcast_id=<id>/text.parquet` (episode_id, podcast_id, mp3_url, speaker,
  turn_text, start_time, end_time, duration, turn_count, inferred_speaker_role,
  inferred_speaker_name). This layout carries no episode metadata, so language/explicit/overlap
  are unknown (None) and filters on them let such episodes through.

A `dataset.json` of the `chitchat-dataset` package is read too (vispod.dataset.chitchat): real chats,
an offline stand-in for demos.

Malformed rows are never dropped silently: every skipped row or episode is counted in `LoadReport`
by reason, with a few examples.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from vispod.dataset.chitchat import is_chitchat_file, iter_chitchat
from vispod.dataset.episodes import LoadReport, SporcEpisode, SporcTurn

Layout = Literal["jsonl", "parquet", "chitchat"]
EPISODES_FILE = "episodeLevelData"
TURNS_FILE = "speakerTurnData"


def episode_id_for(mp3url: str) -> str:
    """SPoRC's episode id: md5(mp3_url)[:16] (the Parquet layout's convention, applied to both)."""
    return hashlib.md5(mp3url.encode("utf-8")).hexdigest()[:16]


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in (".jsonl.gz", ".jsonl"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def detect_layout(path: Path) -> Layout:
    path = Path(path)
    if is_chitchat_file(path):
        return "chitchat"
    if _find(path, EPISODES_FILE) and _find(path, TURNS_FILE):
        return "jsonl"
    if (path / "turns").is_dir() or any(path.glob("podcast_id=*")):
        return "parquet"
    raise FileNotFoundError(
        f"no SPoRC data at {path}: expected {EPISODES_FILE}.jsonl.gz + {TURNS_FILE}.jsonl.gz, "
        "or turns/podcast_id=<id>/text.parquet"
    )


def iter_episodes(path: Path | str, report: LoadReport | None = None) -> Iterator[SporcEpisode]:
    """Episodes with their turns in time order, from either layout; skipped rows go to `report`."""
    path = Path(path)
    report = report if report is not None else LoadReport()
    layout = detect_layout(path)
    report.layout = layout
    if layout == "jsonl":
        yield from _iter_jsonl(path, report)
    elif layout == "chitchat":
        yield from iter_chitchat(path, report)
    else:
        yield from _iter_parquet(path, report)


def _open_text(path: Path) -> Any:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def _json_rows(path: Path, report: LoadReport, kind: str) -> Iterator[tuple[int, dict[str, Any]]]:
    with _open_text(path) as fh:
        lineno = 0
        while True:
            try:
                line = fh.readline()
            except (EOFError, OSError) as exc:  # truncated gzip: report and stop reading this file
                report.bad(f"{kind}_truncated_file", f"{path.name}:{lineno + 1}: {exc}")
                return
            if not line:
                return
            lineno += 1
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                report.bad(f"{kind}_invalid_json", f"{path.name}:{lineno}")
                continue
            if not isinstance(row, dict):
                report.bad(f"{kind}_not_an_object", f"{path.name}:{lineno}")
                continue
            yield lineno, row


def _as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "yes", "no", "1", "0"}:
        return value.strip().lower() in {"true", "yes", "1"}
    return None


def _speaker_label(value: Any) -> str | None:
    """SPoRC stores `speaker` as a list (several labels during overlapping speech): take the first."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, list | tuple) and value and isinstance(value[0], str) and value[0].strip():
        return value[0].strip()
    if hasattr(value, "tolist"):  # numpy arrays from pyarrow
        return _speaker_label(value.tolist())
    return None


def _turn_from(row: dict[str, Any], names: dict[str, str], report: LoadReport, where: str) -> SporcTurn | None:
    text = row.get(names["text"])
    if not isinstance(text, str):
        report.bad("turn_missing_text", where)
        return None
    speaker = _speaker_label(row.get(names["speaker"]))
    if speaker is None:
        report.bad("turn_bad_speaker", where)
        return None
    start, end = _as_float(row.get(names["start"])), _as_float(row.get(names["end"]))
    if start is not None and end is not None and end < start:
        report.bad("turn_end_before_start", where)
        return None
    role = row.get(names["role"])
    name = row.get(names["name"])
    return SporcTurn(
        speaker=speaker,
        text=text,
        start=start,
        end=end,
        role=role if isinstance(role, str) else "",
        name=name if isinstance(name, str) else "",
    )


# A turn's fields in each layout's column names (the synthetic corpora write with the same tables).
JSONL_TURN_FIELDS = {
    "text": "turnText",
    "speaker": "speaker",
    "start": "startTime",
    "end": "endTime",
    "count": "turnCount",
    "role": "inferredSpeakerRole",
    "name": "inferredSpeakerName",
}
PARQUET_TURN_FIELDS = {
    "text": "turn_text",
    "speaker": "speaker",
    "start": "start_time",
    "end": "end_time",
    "count": "turn_count",
    "role": "inferred_speaker_role",
    "name": "inferred_speaker_name",
}


def _sort_key(pair: tuple[int, int | float | None, SporcTurn]) -> tuple[float, float, int]:
    turn_count, start, index = pair[1], pair[2].start, pair[0]
    return (
        float(turn_count) if turn_count is not None else float("inf"),
        start if start is not None else float("inf"),
        index,
    )


def _ordered(turns: list[tuple[int, int | float | None, SporcTurn]]) -> list[SporcTurn]:
    return [t for _, _, t in sorted(turns, key=_sort_key)]


def _rows_with_mp3url(path: Path, report: LoadReport, kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(file:line, mp3url, row) for each row of a JSONL file that names its episode; `{kind}_missing_mp3url`
    for each that does not."""
    for lineno, row in _json_rows(path, report, kind):
        where = f"{path.name}:{lineno}"
        mp3url = row.get("mp3url")
        if not isinstance(mp3url, str) or not mp3url:
            report.bad(f"{kind}_missing_mp3url", where)
            continue
        yield where, mp3url, row


def _iter_jsonl(folder: Path, report: LoadReport) -> Iterator[SporcEpisode]:
    episodes_path, turns_path = _find(folder, EPISODES_FILE), _find(folder, TURNS_FILE)
    assert episodes_path and turns_path
    episodes: dict[str, SporcEpisode] = {}
    for where, mp3url, row in _rows_with_mp3url(episodes_path, report, "episode"):
        if mp3url in episodes:
            report.bad("episode_duplicate_mp3url", where)
            continue
        report.episodes_read += 1
        episodes[mp3url] = SporcEpisode(  # the transcript field is not kept: turns carry the text
            episode_id=episode_id_for(mp3url),
            mp3url=mp3url,
            title=str(row.get("epTitle") or ""),
            podcast_title=str(row.get("podTitle") or ""),
            language=row.get("language") if isinstance(row.get("language"), str) else None,
            explicit=_as_bool(row.get("explicit")),
            overlap_prop_duration=_as_float(row.get("overlapPropDuration")),
        )
    done: set[str] = set()
    current: str | None = None
    buffer: list[tuple[int, int | float | None, SporcTurn]] = []

    def flush() -> Iterator[SporcEpisode]:
        if current is None:
            return
        done.add(current)
        episode = episodes.get(current)
        if episode is None:
            report.bad("turns_without_episode", f"{current} ({len(buffer)} turns)")
            return
        episode.turns = _ordered(buffer)
        yield episode

    for where, mp3url, row in _rows_with_mp3url(turns_path, report, "turn"):
        if mp3url != current:
            if mp3url in done:
                report.bad("turns_not_contiguous", where)
                continue
            yield from flush()
            current, buffer = mp3url, []
        turn = _turn_from(row, JSONL_TURN_FIELDS, report, where)
        if turn is not None:
            report.turns_read += 1
            tc = row.get(JSONL_TURN_FIELDS["count"])
            buffer.append((len(buffer), tc if isinstance(tc, int | float) and not isinstance(tc, bool) else None, turn))
    yield from flush()
    for mp3url in episodes.keys() - done:
        report.bad("episode_without_turns", mp3url)


def _iter_parquet(root: Path, report: LoadReport) -> Iterator[SporcEpisode]:
    import pyarrow.parquet as pq  # heavy: pyarrow, only for a parquet layout

    turns_root = root / "turns" if (root / "turns").is_dir() else root
    for part in sorted(p for p in turns_root.glob("podcast_id=*") if p.is_dir()):
        podcast_id = part.name.split("=", 1)[1]
        files = sorted(part.glob("*.parquet"))
        if not files:
            report.bad("partition_without_parquet", part.name)
            continue
        for file in files:
            where_file = f"{part.name}/{file.name}"
            try:
                table = pq.read_table(file)
            except Exception as exc:  # pyarrow raises several types for corrupt files
                report.bad("unreadable_parquet", f"{where_file}: {type(exc).__name__}")
                continue
            missing = {"turn_text", "speaker"} - set(table.column_names)
            if "episode_id" not in table.column_names and "mp3_url" not in table.column_names:
                missing.add("episode_id|mp3_url")
            if missing:
                report.bad("parquet_missing_columns", f"{where_file}: {sorted(missing)}")
                continue
            grouped: dict[str, tuple[str, list[tuple[int, int | float | None, SporcTurn]]]] = {}
            for i, row in enumerate(table.to_pylist()):
                where = f"{where_file}#{i}"
                mp3url = row.get("mp3_url") if isinstance(row.get("mp3_url"), str) else ""
                episode_id = row.get("episode_id") if isinstance(row.get("episode_id"), str) else ""
                if not episode_id and mp3url:
                    episode_id = episode_id_for(mp3url)
                if not episode_id:
                    report.bad("turn_missing_episode_id", where)
                    continue
                row_podcast = row.get("podcast_id")
                if isinstance(row_podcast, str) and row_podcast and row_podcast != podcast_id:
                    report.bad("turn_podcast_id_mismatch", where)
                    continue
                turn = _turn_from(row, PARQUET_TURN_FIELDS, report, where)
                if turn is None:
                    continue
                report.turns_read += 1
                entry = grouped.setdefault(episode_id, (mp3url, []))
                tc = row.get(PARQUET_TURN_FIELDS["count"])
                entry[1].append((len(entry[1]), tc if isinstance(tc, int | float) else None, turn))
            for episode_id in sorted(grouped):
                mp3url, turns = grouped[episode_id]
                report.episodes_read += 1
                yield SporcEpisode(episode_id=episode_id, mp3url=mp3url, podcast_id=podcast_id, turns=_ordered(turns))
