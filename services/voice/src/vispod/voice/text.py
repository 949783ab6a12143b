"""Cutting turn text into bounded chunks for synthesis: whole sentences, grouped, long ones cut at words."""

from __future__ import annotations

import re

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
    out: list[str] = []
    current = ""
    for sentence in sentences(text):
        for piece in _cut(sentence, max_chars):
            if current and len(current) + 1 + len(piece) > max_chars:
                out.append(current)
                current = piece
            else:
                current = f"{current} {piece}".strip()
    if current:
        out.append(current)
    return out


def _cut(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    pieces: list[str] = []
    current = ""
    for word in sentence.split(" "):
        word = word[:max_chars]
        if current and len(current) + 1 + len(word) > max_chars:
            pieces.append(current + ",")  # a comma: a breath where the cut falls
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        pieces.append(current)
    return pieces
