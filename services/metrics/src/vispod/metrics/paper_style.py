"""The SPoRC-VIST paper's style metrics, exactly as published (definitions: shared/design/FACTS.md).

Kept bug-for-bug so that the paper's per-story numbers reproduce: the turn regex misses markdown labels
such as `**Host 1 (Alex):**` (those transcripts score 0 turns) and the switch rate counts turns, not
changes of speaker. `robust_style` is the measure to trust; this one exists for comparison.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

PAPER_TURN_RE = re.compile(r"^(?:\[?)(Speaker\s*\d+|Host|Guest|Co-host|[A-Z][a-z]+)(?:\]?):\s*")
_PUNCT_TABLE = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class PaperTurn:
    label: str
    text: str


@dataclass(frozen=True)
class PaperStyle:
    words: int
    distinct_1: float
    distinct_2: float
    avg_turn_length: float
    switch_rate: float
    num_turns: int


def paper_tokens(text: str) -> list[str]:
    """Lower-cased, ASCII punctuation deleted (curly quotes and dashes survive, as in the paper), split."""
    return text.lower().translate(_PUNCT_TABLE).split()


def distinct_n(tokens: list[str], n: int) -> float:
    """Unique n-grams / all n-grams; 0.0 when there is no n-gram."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def paper_turns(text: str) -> list[PaperTurn]:
    """Turns as the paper's parser sees them."""
    turns: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        match = PAPER_TURN_RE.match(line)
        if match:
            turns.append((match.group(1), [line[match.end() :]]))
        elif turns:
            turns[-1][1].append(line)
    out = [PaperTurn(label, " ".join(parts).strip()) for label, parts in turns]
    return [t for t in out if t.text]


def paper_style(text: str) -> PaperStyle:
    tokens = paper_tokens(text)
    turns = paper_turns(text)
    lengths = [len(t.text.split()) for t in turns]
    turn_words = sum(lengths)
    avg = turn_words / len(turns) if turns else 0.0
    switch = (len(turns) - 1) / turn_words * 1000 if turns and turn_words else 0.0
    return PaperStyle(
        words=len(text.split()),
        distinct_1=distinct_n(tokens, 1),
        distinct_2=distinct_n(tokens, 2),
        avg_turn_length=avg,
        switch_rate=switch,
        num_turns=len(turns),
    )
