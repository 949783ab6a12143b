"""Episodes of real dialogue in one model, whatever their source (SPoRC's layouts, chit-chat), and the report of
what a reader skipped, by reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_MAX_EXAMPLES = 5


@dataclass(frozen=True)
class SporcTurn:
    speaker: str  # diarisation label, e.g. SPEAKER_00
    text: str
    start: float | None = None
    end: float | None = None
    role: str = ""  # host | guest | neither
    name: str = ""


@dataclass
class SporcEpisode:
    episode_id: str
    mp3url: str
    podcast_id: str = ""
    title: str = ""
    podcast_title: str = ""
    language: str | None = None
    explicit: bool | None = None
    overlap_prop_duration: float | None = None
    turns: list[SporcTurn] = field(default_factory=list)


@dataclass
class LoadReport:
    """What was read and what was skipped, by reason."""

    layout: str = ""
    episodes_read: int = 0
    turns_read: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def bad(self, reason: str, where: str) -> None:
        self.malformed[reason] += 1
        seen = self.examples.setdefault(reason, [])
        if len(seen) < _MAX_EXAMPLES:
            seen.append(where)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "episodes_read": self.episodes_read,
            "turns_read": self.turns_read,
            "malformed_total": self.malformed_total,
            "malformed": dict(sorted(self.malformed.items())),
            "examples": {k: v for k, v in sorted(self.examples.items())},
        }
