"""Small made-up corpora in both SPoRC layouts, for tests, the benchmark and offline demos.

The dialogues are generated from templates (clearly not real speech) so that no SPoRC data is ever
bundled; they carry the fields the reader uses and, on request, a fixed set of malformed rows per
layout whose counts the tests check.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from vispod.dataset.sporc import JSONL_TURN_FIELDS, PARQUET_TURN_FIELDS

_PLACES = ["beach", "mountain", "city street", "kitchen", "park", "river", "market", "stadium", "garden", "station"]
_THINGS = [
    "red bike",
    "old guitar",
    "birthday cake",
    "yellow bus",
    "small boat",
    "wooden table",
    "big dog",
    "blue jacket",
    "cup of coffee",
    "stack of books",
]
_PEOPLE = ["my brother", "the kids", "our neighbour", "a friend from school", "my grandmother", "the whole team"]
_TEMPLATES = [
    "We went down to the {place} with {people} and there was this {thing} right in the middle of it.",
    "I remember the {place} at sunset, the light was orange and {people} were laughing about the {thing}.",
    "So what did the {place} look like when you got there? Was the {thing} still there?",
    "Honestly the {thing} was the best part, {people} carried it all the way from the {place}.",
    "It rained the whole morning, so we stayed near the {place} and watched {people} fix the {thing}.",
    "Tell me more about {people}, did they really paint the {thing} green before the party at the {place}?",
]
# Off-scene chatter that the visualizability heuristic should rank low.
_ADS = "This episode is sponsored by our friends, use the promo code to get a discount and subscribe to the podcast."


@dataclass(frozen=True)
class FakeEpisode:
    mp3url: str
    rss: str
    title: str
    turns: list[tuple[str, str, float, float]]  # speaker label, text, start, end
    language: str = "en"
    explicit: bool = False
    overlap: float = 0.02


def make_episodes(count: int, seed: int = 0, turns_per_episode: int = 60) -> list[FakeEpisode]:
    """`count` episodes of ~`turns_per_episode` turns (≈ 25 words each) between 2–3 speakers."""
    rng = random.Random(seed)
    episodes = []
    for e in range(count):
        speakers = [f"SPEAKER_{i:02d}" for i in range(rng.choice([2, 2, 3]))]
        t = 0.0
        turns = []
        for n in range(turns_per_episode):
            if n < 3:
                text = _ADS
            else:
                text = " ".join(
                    rng.choice(_TEMPLATES).format(
                        place=rng.choice(_PLACES), thing=rng.choice(_THINGS), people=rng.choice(_PEOPLE)
                    )
                    for _ in range(rng.choice([1, 2]))
                )
            duration = len(text.split()) / 2.5
            speaker = speakers[n % len(speakers)] if rng.random() > 0.15 else turns[-1][0] if turns else speakers[0]
            turns.append((speaker, text, round(t, 2), round(t + duration, 2)))
            t += duration + 0.3
        rss = f"https://feeds.example.org/show{e % 3}.rss"
        episodes.append(FakeEpisode(f"https://cdn.example.org/ep{e:04d}.mp3", rss, f"Episode {e}", turns))
    return episodes



def _turn_row(columns: dict[str, str], n: int, speaker: str, text: str, start: float, end: float,
              name: str | None = "") -> dict[str, object]:
    """Turn `n` of an episode under a layout's column names (the reader's tables: writer and reader agree)."""
    values = {"speaker": speaker, "text": text, "start": start, "end": end, "count": n,
              "role": "host" if speaker.endswith("0") else "guest", "name": name}
    return {columns[key]: value for key, value in values.items()} | {"duration": round(end - start, 2)}

def write_jsonl_layout(folder: Path, episodes: list[FakeEpisode], malformed: bool = False) -> Path:
    """episodeLevelData.jsonl.gz + speakerTurnData.jsonl.gz. With `malformed`, adds exactly:
    1 invalid JSON episode line, 1 episode without mp3url, 1 invalid JSON turn line, 2 turns without
    turnText, 1 turn with an empty speaker list, 1 turn of an unknown episode (turns_without_episode).
    """
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "episodeLevelData.jsonl.gz", "wt", encoding="utf-8") as fh:
        for ep in episodes:
            fh.write(
                json.dumps(
                    {
                        "epTitle": ep.title,
                        "epDescription": "",
                        "mp3url": ep.mp3url,
                        "transcript": "",
                        "podTitle": ep.rss,
                        "podDescription": "",
                        "category1": "leisure",
                        "language": ep.language,
                        "explicit": ep.explicit,
                        "overlapPropDuration": ep.overlap,
                        "overlapPropTurnCount": ep.overlap,
                        "numMainSpeakers": len({t[0] for t in ep.turns}),
                        "mainEpSpeakers": sorted({t[0] for t in ep.turns}),
                    }
                )
                + "\n"
            )
        if malformed:
            fh.write("{not json\n")
            fh.write(json.dumps({"epTitle": "no url"}) + "\n")
    with gzip.open(folder / "speakerTurnData.jsonl.gz", "wt", encoding="utf-8") as fh:
        for ep in episodes:
            for n, (speaker, text, start, end) in enumerate(ep.turns):
                row = {"mp3url": ep.mp3url, **_turn_row(JSONL_TURN_FIELDS, n, speaker, text, start, end)}
                row[JSONL_TURN_FIELDS["speaker"]] = [speaker]  # SPoRC's JSONL keeps a list of labels
                if malformed and ep is episodes[0] and n in (5, 6):
                    del row["turnText"]
                if malformed and ep is episodes[0] and n == 7:
                    row["speaker"] = []
                fh.write(json.dumps(row) + "\n")
            if malformed and ep is episodes[0]:
                fh.write("[1, 2\n")
        if malformed:
            fh.write(
                json.dumps(
                    {
                        "mp3url": "https://cdn.example.org/unknown.mp3",
                        "speaker": ["SPEAKER_00"],
                        "turnText": "orphan",
                        "turnCount": 0,
                    }
                )
                + "\n"
            )
    return folder


def write_parquet_layout(folder: Path, episodes: list[FakeEpisode], malformed: bool = False) -> Path:
    """turns/podcast_id=<md5(rss)[:12]>/text.parquet. With `malformed`, adds exactly: 2 rows with a null
    turn_text, 1 row with a null speaker, and one partition folder holding a corrupt parquet file.
    """
    import pyarrow as pa  # heavy: pyarrow, only for a parquet layout
    import pyarrow.parquet as pq

    by_podcast: dict[str, list[dict[str, object]]] = {}
    for ep in episodes:
        podcast_id = hashlib.md5(ep.rss.encode()).hexdigest()[:12]
        episode_id = hashlib.md5(ep.mp3url.encode()).hexdigest()[:16]
        rows = by_podcast.setdefault(podcast_id, [])
        for n, (speaker, text, start, end) in enumerate(ep.turns):
            turn = _turn_row(PARQUET_TURN_FIELDS, n, speaker, text, start, end, name=None)
            rows.append({"episode_id": episode_id, "podcast_id": podcast_id, "mp3_url": ep.mp3url, **turn})
    first = sorted(by_podcast)[0]
    if malformed:
        by_podcast[first][5]["turn_text"] = None
        by_podcast[first][6]["turn_text"] = None
        by_podcast[first][7]["speaker"] = None
    for podcast_id, rows in by_podcast.items():
        part = folder / "turns" / f"podcast_id={podcast_id}"
        part.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), part / "text.parquet")
    if malformed:
        bad = folder / "turns" / "podcast_id=badbadbadbad"
        bad.mkdir(parents=True, exist_ok=True)
        (bad / "text.parquet").write_bytes(b"PAR1 this is not parquet")
    return folder
