"""From a dialogue (structured turns, or a "Name: text" transcript) to a checked rendering plan.

Every refusal is a DialogueError with a reason a person can act on; the gRPC servicer turns it into
INVALID_ARGUMENT and the Kafka handler into a dead letter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vispod.common.errors import InvalidArgument
from vispod.v1 import common_pb2
from vispod.voice.text import clean

_SPEAKER_LINE = re.compile(r"^\s*\**([A-Za-z][\w .'-]{0,39}?)\**\s*:\**\s*(.*)$")


class DialogueError(InvalidArgument):
    """The dialogue cannot be rendered as asked (empty, too long, an unknown voice, ...)."""


@dataclass(frozen=True)
class Limits:
    max_chars: int
    max_turns: int
    max_turn_chars: int


@dataclass(frozen=True)
class PlannedTurn:
    index: int
    speaker: str
    text: str
    image_refs: tuple[int, ...] = ()


@dataclass(frozen=True)
class Plan:
    turns: list[PlannedTurn]
    # Speaker -> voice, in order of first appearance.
    voices: dict[str, str]
    # Image index -> chapter title.
    image_titles: dict[int, str] = field(default_factory=dict)


def parse_transcript(text: str) -> list[common_pb2.Turn]:
    """"Name: text" lines; other lines continue the turn before them (or open a "Narrator" turn)."""
    turns: list[common_pb2.Turn] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _SPEAKER_LINE.match(line)
        if match:
            turns.append(common_pb2.Turn(speaker=match.group(1).strip(), text=match.group(2).strip()))
        elif turns:
            turns[-1].text = f"{turns[-1].text} {line.strip()}".strip()
        else:
            turns.append(common_pb2.Turn(speaker="Narrator", text=line.strip()))
    return turns


def load_dialogue_file(path: Path) -> common_pb2.Dialogue:
    """A transcript .txt, or dialogue.json shaped {"turns": [{"speaker", "text", "image_refs"}]}."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix.lower() != ".json":
        return common_pb2.Dialogue(text=raw)
    data = json.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("turns"), list):
        raise DialogueError(f"{path}: expected {{\"turns\": [{{\"speaker\", \"text\", \"image_refs\"}}]}}")
    turns = []
    for i, t in enumerate(data["turns"]):
        if not isinstance(t, dict):
            raise DialogueError(f"{path}: turn {i} is not an object")
        refs = [int(r) for r in t.get("image_refs") or []]
        turns.append(common_pb2.Turn(speaker=str(t.get("speaker") or ""), text=str(t.get("text") or ""),
                                     image_refs=refs))
    return common_pb2.Dialogue(turns=turns)


def plan(dialogue: common_pb2.Dialogue, engine_voices: Sequence[str], requested: Mapping[str, str],
         limits: Limits, images: Sequence[common_pb2.ImageRef] = ()) -> Plan:
    source = list(dialogue.turns) or parse_transcript(dialogue.text)
    turns: list[PlannedTurn] = []
    total = 0
    for turn in source:
        text = clean(turn.text)
        if not text:
            continue
        if len(text) > limits.max_turn_chars:
            raise DialogueError(f"dialogue too long: turn {len(turns)} has {len(text)} characters, "
                                f"over the limit of {limits.max_turn_chars}")
        total += len(text)
        speaker = turn.speaker.strip() or f"Speaker {len(turns) % 2 + 1}"
        turns.append(PlannedTurn(len(turns), speaker, text, tuple(r for r in turn.image_refs if r >= 0)))
    if not turns:
        raise DialogueError("empty dialogue: no turn has text to speak")
    if len(turns) > limits.max_turns:
        raise DialogueError(f"dialogue too long: {len(turns)} turns, over the limit of {limits.max_turns}")
    if total > limits.max_chars:
        raise DialogueError(f"dialogue too long: {total} characters, over the limit of {limits.max_chars}")
    return Plan(turns, assign_voices([t.speaker for t in turns], engine_voices, requested),
                chapter_titles(turns, images))


def assign_voices(speakers: Sequence[str], engine_voices: Sequence[str],
                  requested: Mapping[str, str]) -> dict[str, str]:
    """Requested voices first; the others get the engine's voices in order, skipping ones taken."""
    order = list(dict.fromkeys(speakers))
    unknown_speakers = sorted(set(requested) - set(order))
    if unknown_speakers:
        raise DialogueError(f"voices given for speakers not in the dialogue: {unknown_speakers}")
    for speaker, voice in requested.items():
        if voice not in engine_voices:
            raise DialogueError(f"unknown voice {voice!r} for speaker {speaker!r}; known: {list(engine_voices)}")
    free = [v for v in engine_voices if v not in requested.values()]
    if len([s for s in order if s not in requested]) > len(free):
        raise DialogueError(f"{len(order)} speakers but only {len(engine_voices)} voices: {list(engine_voices)}")
    voices: dict[str, str] = {}
    for speaker in order:
        voices[speaker] = requested.get(speaker) or free.pop(0)
    return voices


def chapter_titles(turns: Sequence[PlannedTurn], images: Sequence[common_pb2.ImageRef]) -> dict[int, str]:
    titles: dict[int, str] = {}
    for turn in turns:
        for ref in turn.image_refs:
            if ref not in titles:
                caption = clean(images[ref].caption) if ref < len(images) else ""
                titles[ref] = f"Photo {ref + 1}: {caption[:60]}" if caption else f"Photo {ref + 1}"
    return titles
