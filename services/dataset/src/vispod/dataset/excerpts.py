"""Dialogue excerpts: contiguous 600–800-word spans of an episode with at least two speakers.

Steps, in order: episode filters (language, explicit, speech overlap) → clean turn text → merge
consecutive turns of the same speaker → every window of whole turns whose word count falls in
[min_words, max_words] with ≥ min_speakers speakers → score each (visualizability) → keep the best
non-overlapping windows of the episode → relabel speakers Speaker 1..N in order of first appearance.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vispod.dataset.episodes import SporcEpisode
from vispod.dataset.scoring import HeuristicScorer, VisualizabilityScorer

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ExcerptConfig:
    min_words: int = 600
    max_words: int = 800
    min_speakers: int = 2
    max_speakers: int = 6
    # Episode filters; None values in the source (unknown) pass.
    languages: tuple[str, ...] = ("en",)
    allow_explicit: bool = False
    max_overlap: float = 0.15  # share of the episode's duration with overlapping speech
    min_score: float = 0.0
    max_per_episode: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Excerpt:
    excerpt_id: str
    episode_id: str
    podcast_id: str
    mp3url: str
    turn_range: tuple[int, int]  # [first, last) in the merged-turn list of the episode
    turns: tuple[tuple[str, str], ...]  # (Speaker N, text)
    words: int
    score: float

    @property
    def num_speakers(self) -> int:
        return len({s for s, _ in self.turns})

    @property
    def text(self) -> str:
        return render_dialogue(self.turns)


@dataclass
class ExcerptStats:
    episodes_seen: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    excerpts: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "episodes_seen": self.episodes_seen,
            "excerpts": self.excerpts,
            "rejected": dict(sorted(self.rejected.items())),
        }


def render_dialogue(turns: Iterable[tuple[str, str]]) -> str:
    """`Speaker N: text` lines separated by blank lines (the paper's transcript style)."""
    return "\n\n".join(f"{speaker}: {text}" for speaker, text in turns)


def clean_text(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def merge_turns(turns: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop empty turns and join consecutive turns of one speaker into one."""
    merged: list[tuple[str, str]] = []
    for speaker, raw in turns:
        text = clean_text(raw)
        if not text:
            continue
        if merged and merged[-1][0] == speaker:
            merged[-1] = (speaker, f"{merged[-1][1]} {text}")
        else:
            merged.append((speaker, text))
    return merged


def normalise_speakers(turns: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Relabel speakers Speaker 1..N in order of first appearance."""
    labels: dict[str, str] = {}
    out = []
    for speaker, text in turns:
        label = labels.setdefault(speaker, f"Speaker {len(labels) + 1}")
        out.append((label, text))
    return tuple(out)


def episode_rejection(episode: SporcEpisode, cfg: ExcerptConfig) -> str | None:
    """Why an episode is filtered out, or None."""
    if cfg.languages and episode.language is not None:
        lang = episode.language.lower().split("-")[0]
        if lang not in cfg.languages:
            return "language"
    if not cfg.allow_explicit and episode.explicit:
        return "explicit"
    if episode.overlap_prop_duration is not None and episode.overlap_prop_duration > cfg.max_overlap:
        return "overlap"
    return None


def candidate_windows(words: list[int], speakers: list[str], cfg: ExcerptConfig) -> Iterator[tuple[int, int, int]]:
    """(start, end, words) of every window of whole turns within the word and speaker bounds."""
    n = len(words)
    for start in range(n):
        total = 0
        seen: set[str] = set()
        for end in range(start, n):
            total += words[end]
            seen.add(speakers[end])
            if total > cfg.max_words:
                break
            if total >= cfg.min_words and cfg.min_speakers <= len(seen) <= cfg.max_speakers:
                yield start, end + 1, total
                break  # the shortest fitting window per start: its longer siblings overlap it anyway


def excerpt_id_for(episode_id: str, start: int, end: int) -> str:
    return f"{episode_id}:{start}-{end}"


def episode_excerpts(
    episode: SporcEpisode, cfg: ExcerptConfig, scorer: VisualizabilityScorer, stats: ExcerptStats | None = None
) -> list[Excerpt]:
    """The best non-overlapping excerpts of one episode (at most cfg.max_per_episode), in time order."""
    stats = stats if stats is not None else ExcerptStats()
    stats.episodes_seen += 1
    reason = episode_rejection(episode, cfg)
    if reason:
        stats.rejected[reason] += 1
        return []
    merged = merge_turns((t.speaker, t.text) for t in episode.turns)
    words = [len(text.split()) for _, text in merged]
    speakers = [s for s, _ in merged]
    scored: list[tuple[float, int, int, int]] = []
    for start, end, total in candidate_windows(words, speakers, cfg):
        text = render_dialogue(merged[start:end])
        score = scorer.score(text)
        if score >= cfg.min_score:
            scored.append((score, start, end, total))
    if not scored:
        stats.rejected["no_window"] += 1
        return []
    # Best score first; ties broken by position so the choice is deterministic.
    scored.sort(key=lambda s: (-s[0], s[1]))
    chosen: list[tuple[float, int, int, int]] = []
    for cand in scored:
        if len(chosen) >= cfg.max_per_episode:
            break
        if all(cand[2] <= c[1] or cand[1] >= c[2] for c in chosen):  # the overlap filter between excerpts
            chosen.append(cand)
    chosen.sort(key=lambda c: c[1])
    out = [
        Excerpt(
            excerpt_id=excerpt_id_for(episode.episode_id, start, end),
            episode_id=episode.episode_id,
            podcast_id=episode.podcast_id,
            mp3url=episode.mp3url,
            turn_range=(start, end),
            turns=normalise_speakers(merged[start:end]),
            words=total,
            score=round(score, 6),
        )
        for score, start, end, total in chosen
    ]
    stats.excerpts += len(out)
    return out


def iter_excerpts(
    episodes: Iterable[SporcEpisode],
    cfg: ExcerptConfig,
    scorer: VisualizabilityScorer | None = None,
    stats: ExcerptStats | None = None,
    seed: int = 0,
    episode_share: float = 1.0,
) -> Iterator[Excerpt]:
    """Excerpts of a stream of episodes; `episode_share` < 1 keeps a seeded, stable subset of episodes."""
    scorer = scorer or HeuristicScorer()
    stats = stats if stats is not None else ExcerptStats()
    for episode in episodes:
        if episode_share < 1.0 and not _keep(episode.episode_id, seed, episode_share):
            stats.rejected["sampled_out"] += 1
            continue
        yield from episode_excerpts(episode, cfg, scorer, stats)


def _keep(episode_id: str, seed: int, share: float) -> bool:
    digest = hashlib.sha256(f"{seed}/{episode_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share
