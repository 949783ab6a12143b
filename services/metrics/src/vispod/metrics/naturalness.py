"""Dialogue naturalness from real weights, without an LLM judge (none capable ships offline).

Turn vectors are all-MiniLM-L6-v2 sentence embeddings (real weights, the caption grounder's model; a long turn
is the normalised mean of its windows). Three measures, each validated on the paper's own transcripts before a
decision may use it (vispod.evaluation.naturalness_validation; its figures are committed beside it):

- responsiveness: mean cosine of each turn to the next, minus the mean cosine of non-adjacent turn pairs of the
  same dialogue. People answer what was just said: shuffled turns lose it, a loop of one topic gains nothing.
- question_answer: share of question turns (a "?") that the next turn, by another speaker, answers with at
  least one sentence that is not itself a question.
- novelty: 1 − the mean, over turns after the first, of the highest cosine to any earlier turn: a looping
  dialogue says the same thing again and scores near 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from vispod.metrics.caption_grounding import CaptionGrounder
from vispod.metrics.speaker_turns import Turn, normalise_name
from vispod.v1 import common_pb2

MIN_TURNS = 3
MAX_TURNS = 400  # bounds the work on a huge input (podcasts have tens of turns)
_SENTENCES = re.compile(r"[^.!?…]+[.!?…]*")

MEASURES = ("responsiveness", "question_answer", "novelty")


@dataclass(frozen=True)
class Naturalness:
    responsiveness: float
    question_answer: float
    novelty: float
    turns: int
    weights: str

    def to_proto(self) -> common_pb2.NaturalnessMetrics:
        return common_pb2.NaturalnessMetrics(responsiveness=self.responsiveness,
                                             question_answer=self.question_answer, novelty=self.novelty,
                                             turns=self.turns, weights=self.weights)


def turn_vectors(grounder: CaptionGrounder, texts: Sequence[str]) -> list[list[float]]:
    """One unit vector per text: the normalised mean of its windows' embeddings."""
    import torch  # heavy (seconds): only with the text model on

    windows, owners = grounder.embed(list(texts))
    sums = torch.zeros((len(texts), windows.shape[1]))
    sums.index_add_(0, torch.tensor(owners, dtype=torch.long), windows)
    return torch.nn.functional.normalize(sums, dim=1).tolist()


def _is_answer(text: str) -> bool:
    return any(s.strip() and not s.strip().endswith("?") for s in _SENTENCES.findall(text))


def question_answer_rate(turns: Sequence[Turn]) -> float:
    """Share of question turns answered by the next turn (another speaker, one non-question sentence)."""
    asked = answered = 0
    for turn, reply in pairwise(turns):
        if "?" not in turn.text:
            continue
        asked += 1
        answered += normalise_name(reply.speaker) != normalise_name(turn.speaker) and _is_answer(reply.text)
    return answered / asked if asked else 0.0


def naturalness_of_vectors(turns: Sequence[Turn], vectors: Sequence[Sequence[float]], weights: str) -> Naturalness:
    v = np.asarray(vectors, dtype=float)
    n = len(v)
    sim = v @ v.T
    adjacent = float(np.diagonal(sim, offset=1).mean())
    distant = float(sim[np.triu_indices(n, k=2)].mean())
    novelty = 1.0 - float(np.mean([sim[i, :i].max() for i in range(1, n)]))
    return Naturalness(responsiveness=adjacent - distant, question_answer=question_answer_rate(turns),
                       novelty=novelty, turns=n, weights=weights)


def naturalness(grounder: CaptionGrounder, turns: Sequence[Turn]) -> Naturalness | None:
    """The three measures of one dialogue's turns (the first MAX_TURNS); None with fewer than 3 non-blank turns."""
    kept = [t for t in turns if t.text.strip()][:MAX_TURNS]
    if len(kept) < MIN_TURNS:
        return None
    return naturalness_of_vectors(kept, turn_vectors(grounder, [t.text for t in kept]), grounder.weights)
