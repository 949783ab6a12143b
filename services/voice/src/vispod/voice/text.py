"""Cutting turn text into bounded chunks for synthesis: whole sentences, grouped, long ones cut at words."""

from __future__ import annotations

import re
from collections.abc import Iterable

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")
_SPACE = re.compile(r"\s+")
_TYPOGRAPHY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2014": ", ",
                             "\u2013": ", ", "\u00a0": " "})


def clean(text: str) -> str:
    """One line of speakable text: whitespace collapsed, markdown emphasis and stage directions dropped."""
    text = re.sub(r"[*_`#]+", "", text.translate(_TYPOGRAPHY))
    text = re.sub(r"\[[^\]]{0,80}\]", " ", text)  # [laughs], [image 2]
    return re.sub(r"\s+([,.;:!?])", r"\1", _SPACE.sub(" ", text)).strip()


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(clean(text)) if s.strip()]


def chunks(text: str, max_chars: int) -> list[str]:
    """Sentences grouped up to `max_chars`; a longer sentence is cut at word boundaries."""
    return _pack((piece for sentence in sentences(text) for piece in _cut(sentence, max_chars)), max_chars)


def _cut(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    # A comma where the cut falls: a breath.
    return _pack((word[:max_chars] for word in sentence.split(" ")), max_chars, joint=",")


def _pack(parts: Iterable[str], max_chars: int, joint: str = "") -> list[str]:
    """`parts` joined by spaces into pieces of at most `max_chars`; `joint` ends each piece the limit closed."""
    out: list[str] = []
    current = ""
    for part in parts:
        if current and len(current) + 1 + len(part) > max_chars:
            out.append(current + joint)
            current = part
        else:
            current = f"{current} {part}".strip()
    if current:
        out.append(current)
    return out
