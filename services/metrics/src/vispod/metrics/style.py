"""Podcast style metrics of one dialogue, in two modes.

- `paper`: the SPoRC-VIST paper's definitions, bug for bug (see paper_style.py); reproduces its numbers.
- `robust` (default): real speaker turns (speaker_turns.py, or the structured turns of a vispod.v1 Dialogue),
  speech words only (no titles, stage directions or label words), switch rate = real changes of speaker per
  1,000 words, plus speaker count and balance, longest-monologue share, question rate, repeated-4-gram rate and
  image-mention rate. Words are counted per language (language.py: Chinese and Japanese by character), and the
  result names the language it assumed.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Literal

from vispod.metrics.language import detect_language, word_tokens
from vispod.metrics.paper_style import PaperStyle, distinct_n, paper_style
from vispod.metrics.speaker_turns import Turn, clean_speech, merge_turns, parse_turns
from vispod.v1 import common_pb2

Mode = Literal["paper", "robust"]
MODES: tuple[Mode, ...] = ("paper", "robust")

# Words that talk about the medium rather than the scene; the paper's prompt forbids them.
IMAGE_WORDS = frozenset(
    ["image", "images", "photo", "photos", "photograph", "photographs", "picture", "pictures", "pic", "pics",
     "snapshot", "snapshots"]
)
_QUESTION_MARKS = ("?", "？")


@dataclass(frozen=True)
class StyleResult(PaperStyle):
    """The paper's fields (PaperStyle), then the robust mode's."""

    mode: Mode = "robust"
    # robust mode only (0 in paper mode)
    num_speakers: int = 0
    speaker_balance: float = 0.0
    longest_monologue_share: float = 0.0
    question_rate: float = 0.0
    repeated_4gram_rate: float = 0.0
    image_mention_rate: float = 0.0
    # robust mode: the language word counts assumed (declared, else detected from the script)
    language: str = ""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready; paper mode keeps only the paper's fields."""
        data = asdict(self)
        data.pop("mode")
        if self.mode == "paper":
            for key in list(data):
                if key not in PAPER_FIELDS:
                    data.pop(key)
        return data

    def to_proto(self) -> common_pb2.StyleMetrics:
        data = asdict(self)
        data.pop("mode")
        return common_pb2.StyleMetrics(**data)


PAPER_FIELDS = tuple(f.name for f in fields(PaperStyle))


def tokens(text: str) -> list[str]:
    """Lower-case word tokens; any Unicode punctuation (curly quotes, dashes) separates words; CJK by character."""
    return word_tokens(text)


def normalised_entropy(counts: list[int]) -> float:
    """Entropy of the distribution / log(number of parts): 1 = perfectly even, 0 = one part holds everything."""
    total = sum(counts)
    parts = [c for c in counts if c > 0]
    if total == 0 or len(parts) < 2:
        return 0.0
    h = -sum(c / total * math.log(c / total) for c in parts)
    return h / math.log(len(parts))


def robust_style_of_turns(turns: list[Turn], language: str = "") -> StyleResult:
    """Robust metrics of speaker turns; `language` is the declared tag, detected from the text when empty."""
    language = language or detect_language(" ".join(t.text for t in turns))
    lengths = [t.words for t in turns]
    words = sum(lengths)
    toks = [tok for t in turns for tok in tokens(t.text)]
    per_speaker: Counter[str] = Counter()
    for t in turns:
        per_speaker[t.speaker.lower()] += t.words
    changes = max(len(turns) - 1, 0)
    return StyleResult(
        mode="robust",
        words=words,
        distinct_1=distinct_n(toks, 1),
        distinct_2=distinct_n(toks, 2),
        avg_turn_length=words / len(turns) if turns else 0.0,
        switch_rate=changes / words * 1000 if words else 0.0,
        num_turns=len(turns),
        num_speakers=len(per_speaker),
        speaker_balance=normalised_entropy(list(per_speaker.values())),
        longest_monologue_share=max(lengths) / words if words else 0.0,
        question_rate=sum(any(q in t.text for q in _QUESTION_MARKS) for t in turns) / len(turns) if turns else 0.0,
        repeated_4gram_rate=1.0 - distinct_n(toks, 4) if len(toks) >= 4 else 0.0,
        image_mention_rate=sum(tok in IMAGE_WORDS for tok in toks) / words * 1000 if words else 0.0,
        language=language,
    )


def robust_style(text: str, known_speakers: tuple[str, ...] = ()) -> StyleResult:
    return robust_style_of_turns(parse_turns(text, known_speakers))


def paper_mode(text: str) -> StyleResult:
    p = paper_style(text)
    return StyleResult(mode="paper", **asdict(p))


def style_of_text(text: str, mode: Mode = "robust") -> StyleResult:
    if mode == "paper":
        return paper_mode(text)
    if mode == "robust":
        return robust_style(text)
    raise ValueError(f"unknown style mode {mode!r}; expected one of {MODES}")


def dialogue_text(dialogue: common_pb2.Dialogue) -> str:
    """The transcript as text: `dialogue.text`, else the turns rendered as `Speaker: text` lines."""
    if dialogue.text.strip():
        return dialogue.text
    return "\n\n".join(f"{t.speaker or 'Speaker'}: {t.text}" for t in dialogue.turns)


def dialogue_turns(dialogue: common_pb2.Dialogue) -> list[Turn]:
    """Speaker turns of a vispod.v1 Dialogue: its structured turns when it has them, else parsed from its text."""
    if any(t.text.strip() for t in dialogue.turns):
        return merge_turns((t.speaker, clean_speech(t.text)) for t in dialogue.turns)
    return parse_turns(dialogue.text, [s.name for s in dialogue.speakers])


def style_of_dialogue(dialogue: common_pb2.Dialogue, mode: Mode = "robust") -> StyleResult:
    """Robust mode trusts structured turns when the dialogue carries them; paper mode always reads the text."""
    if mode == "paper":
        return paper_mode(dialogue_text(dialogue))
    if mode != "robust":
        raise ValueError(f"unknown style mode {mode!r}; expected one of {MODES}")
    return robust_style_of_turns(dialogue_turns(dialogue), dialogue.language)
