"""Choosing the next token from llama.cpp's logits (numpy): greedy at temperature 0, otherwise top-k, temperature,
top-p with a generator seeded per request, so a seed gives the same text at any concurrency. Before that, a step's
stop strings and end tokens are masked until `min_words`, its forbidden strings always, repeated n-grams
(`no_repeat_ngram`, also those of text the request must not copy) and recent tokens (`repeat_penalty`) as the
request's sampling says."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from vispod.generator.backends.base import Step


@dataclass(frozen=True)
class Sampling:
    """A request's decoding settings (the defaults: greedy, nothing banned)."""

    temperature: float = 0.0     # 0: greedy
    top_p: float = 1.0
    top_k: int = 40              # 0: the whole vocabulary
    repeat_penalty: float = 1.0  # logits of the last repeat_last_n tokens divided (or, if negative, multiplied) by it
    repeat_last_n: int = 64
    # No n-gram of this many tokens may occur twice in what follows the prompt (the model's tokens and the
    # steps' scaffold text): no looped sentence, no copy of a scaffold line. The prompt itself is not counted:
    # whether a model echoes its prompt is the model's, and measured. 0: off.
    no_repeat_ngram: int = 0
    seed: int = 0


@dataclass
class SamplerState:
    """What one request's sampling remembers: its seeded generator, its recent tokens and its n-grams."""

    sampling: Sampling
    rng: np.random.Generator
    recent: deque = field(default_factory=lambda: deque(maxlen=256))
    history: list[int] = field(default_factory=list)     # tokens fed after the prompt (no_repeat_ngram only)
    ngrams: dict[tuple[int, ...], set[int]] = field(default_factory=dict)   # (n-1)-gram -> tokens seen after it

    @classmethod
    def seeded(cls, sampling: Sampling) -> SamplerState:
        return cls(sampling, np.random.default_rng(sampling.seed))

    def feed(self, tokens: list[int]) -> None:
        """Tokens fed after the prompt: remembered for no_repeat_ngram."""
        n = self.sampling.no_repeat_ngram
        if not n:
            return
        h = self.history
        for tok in tokens:
            h.append(tok)
            if len(h) >= n:
                self.ngrams.setdefault(tuple(h[len(h) - n:len(h) - 1]), set()).add(tok)

    def ban_runs_of(self, tokens: list[int]) -> None:
        """No run of `no_repeat_ngram` tokens of `tokens` may be written either (a few-shot example's turn: the model
        continues the pattern, not the example's words)."""
        n = self.sampling.no_repeat_ngram
        for i in range(len(tokens) - n + 1 if n else 0):
            self.ngrams.setdefault(tuple(tokens[i:i + n - 1]), set()).add(tokens[i + n - 1])


class Sampler:
    """Token choice over one vocabulary: `pieces` (each token's bytes) and `eog` (its end-of-generation tokens)."""

    def __init__(self, pieces: list[bytes], eog: np.ndarray) -> None:
        self.pieces = pieces
        self.eog = eog
        self._masks: dict[tuple[tuple[str, ...], bool], np.ndarray] = {}

    def stop_mask(self, stops: tuple[str, ...]) -> np.ndarray:
        """Tokens that end the step: end-of-generation tokens and tokens whose text holds a stop string."""
        return self.piece_mask(stops, with_eog=True)

    def piece_mask(self, needles: tuple[str, ...], *, with_eog: bool = False) -> np.ndarray:
        """Tokens whose text holds one of `needles` (and the end-of-generation tokens if asked)."""
        mask = self._masks.get((needles, with_eog))
        if mask is None:
            mask = self.eog.copy() if with_eog else np.zeros(len(self.pieces), dtype=bool)
            for s in needles:
                needle = s.encode("utf-8")
                for t, piece in enumerate(self.pieces):
                    if needle in piece:
                        mask[t] = True
            self._masks[(needles, with_eog)] = mask
        return mask

    def sample(self, logits: np.ndarray, state: SamplerState, step: Step, step_words: int) -> int:
        """The next token of a step that has written `step_words` words so far."""
        s = state.sampling
        x = logits.astype(np.float32, copy=True)
        if step_words < step.min_words:
            x[self.stop_mask(step.stop)] = -np.inf
        if step.forbid:
            x[self.piece_mask(step.forbid)] = -np.inf
        if s.no_repeat_ngram and len(state.history) >= s.no_repeat_ngram - 1:
            banned = state.ngrams.get(tuple(state.history[len(state.history) - s.no_repeat_ngram + 1:]))
            if banned:
                x[list(banned)] = -np.inf
        if s.repeat_penalty != 1.0 and state.recent:
            recent = np.fromiter(list(state.recent)[-s.repeat_last_n:], dtype=np.int64)
            vals = x[recent]
            x[recent] = np.where(vals > 0, vals / s.repeat_penalty, vals * s.repeat_penalty)
        if s.temperature <= 0:
            return int(np.argmax(x))
        k = min(s.top_k, x.size) if s.top_k > 0 else x.size
        top = np.argpartition(-x, k - 1)[:k]
        top = top[np.argsort(-x[top])]
        z = x[top] / s.temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        if s.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(p), s.top_p)) + 1
            p = p[:keep] / p[:keep].sum()
            top = top[:keep]
        return int(top[state.rng.choice(len(p), p=p)])
