"""Cutting a whole dialogue into CLIP-sized text windows, so nothing is silently truncated.

CLIP's text encoder takes 77 tokens including start and end, so a window holds at most 75 BPE tokens. Sentences
are packed greedily in order; a sentence longer than a window is split at token boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")


@dataclass(frozen=True)
class Window:
    text: str
    ids: tuple[int, ...]  # BPE ids without start/end tokens


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def make_windows(text: str, tokenizer: Any, context_length: int = 77) -> list[Window]:
    """Windows covering every token of `text` in order, each at most `context_length - 2` tokens."""
    room = context_length - 2
    windows: list[Window] = []
    cur_text: list[str] = []
    cur_ids: list[int] = []

    def flush() -> None:
        if cur_ids:
            windows.append(Window(" ".join(cur_text), tuple(cur_ids)))
        cur_text.clear()
        cur_ids.clear()

    for sentence in split_sentences(text):
        ids = list(tokenizer.encode(sentence))
        if not ids:
            continue
        if len(ids) > room:  # one over-long sentence: its own windows, cut at token boundaries
            flush()
            for start in range(0, len(ids), room):
                chunk = ids[start : start + room]
                windows.append(Window(tokenizer.decode(chunk).strip(), tuple(chunk)))
            continue
        if len(cur_ids) + len(ids) > room:
            flush()
        cur_text.append(sentence)
        cur_ids.extend(ids)
    flush()
    return windows


def window_tokens(windows: list[Window], sot: int, eot: int, context_length: int = 77) -> torch.Tensor:
    """(len(windows), context_length) token ids: start, the window, end, zero padding (open_clip's layout)."""
    out = torch.zeros(len(windows), context_length, dtype=torch.long)
    for row, w in enumerate(windows):
        seq = [sot, *w.ids, eot]
        if len(seq) > context_length:
            raise ValueError(f"window of {len(w.ids)} tokens does not fit a context of {context_length}")
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out
