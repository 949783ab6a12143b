"""What a text-only model reads about each photo (`text_input`): its caption, perception's facts, or both.

The facts are made here from the decoded photos and travel with the images on DialogueGenerated, so every
consumer knows what the model saw; the input mode says whether captions were shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from vispod.generator.request import Job
from vispod.perception.describe import facts_phrase
from vispod.perception.perceiver import Perceiver
from vispod.v1 import common_pb2, events_pb2


@dataclass(frozen=True)
class SceneInputs:
    texts: list[str]                                   # one per photo: what the model reads about it
    input_mode: int                                    # events_pb2.InputMode
    facts: list[common_pb2.Perception] = field(default_factory=list)   # one per photo; empty: none made

    @property
    def shows_facts(self) -> bool:
        return bool(self.facts)


def with_facts(caption: str, phrase: str) -> str:
    return f"{caption} (detected: {phrase})" if caption else phrase


def scene_inputs(job: Job, text_input: str, perceiver: Perceiver) -> SceneInputs:
    if text_input == "captions":
        return SceneInputs(list(job.captions), events_pb2.INPUT_MODE_CAPTIONS)
    facts = [perceiver.perceive(image, digest) for image, digest in zip(job.images, job.digests, strict=True)]
    return described(job.captions, facts, text_input)


def described(captions: Sequence[str], facts: Sequence[common_pb2.Perception], text_input: str) -> SceneInputs:
    """The scene texts of photos whose facts are known: the facts' phrase, after the caption where one is shown."""
    phrases = [facts_phrase(f) for f in facts]
    if text_input == "facts" or not any(captions):
        return SceneInputs(phrases, events_pb2.INPUT_MODE_FACTS, list(facts))
    texts = [with_facts(c, p) for c, p in zip(captions, phrases, strict=True)]
    return SceneInputs(texts, events_pb2.INPUT_MODE_CAPTIONS_AND_FACTS, list(facts))
