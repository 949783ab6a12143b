"""Object hallucination: concrete nouns a dialogue mentions that nothing about the photos supports.

Mentions are the COCO/ImageNet vocabulary terms of vispod.common.visual_vocabulary (synonyms and plurals
included: "puppies" is a mention of dog). A photo's evidence is its human caption (when it has one) and its
perception facts (the detector's COCO objects, the classifier's ImageNet labels and the COCO category each is a
kind of). A turn that refers to photos (Turn.image_refs) is checked against those photos; a turn that refers to
none, against every photo of the story. rate = unsupported mentions / all mentions (0 with no mention).

A specific claim needs specific evidence: a detected "dog" supports "dog" and "puppy", not "golden retriever".
With neither a caption nor facts on any photo there is no evidence to check against, and no result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from vispod.common.visual_vocabulary import is_supported, noun_mentions, supporting_terms
from vispod.v1 import common_pb2

MAX_LISTED_TERMS = 20


@dataclass(frozen=True)
class Hallucination:
    mentions: int
    unsupported: Counter[str]
    photos_with_perception: int
    photos_with_caption: int
    elsewhere: int = 0  # unsupported mentions that another photo of the story supports: the wrong scene

    @property
    def nowhere(self) -> int:
        """Unsupported mentions that no photo of the story supports."""
        return sum(self.unsupported.values()) - self.elsewhere

    @property
    def rate(self) -> float:
        return sum(self.unsupported.values()) / self.mentions if self.mentions else 0.0

    def to_proto(self) -> common_pb2.HallucinationMetrics:
        return common_pb2.HallucinationMetrics(
            mentions=self.mentions, unsupported=sum(self.unsupported.values()), rate=self.rate,
            unsupported_terms=[term for term, _ in self.unsupported.most_common(MAX_LISTED_TERMS)],
            photos_with_perception=self.photos_with_perception, photos_with_caption=self.photos_with_caption)


def has_perception(ref: common_pb2.ImageRef) -> bool:
    return bool(ref.perception.objects or ref.perception.labels or ref.perception.models)


def photo_support(ref: common_pb2.ImageRef) -> frozenset[str]:
    """What one photo's caption and perception facts support."""
    facts = ref.perception
    return supporting_terms(ref.caption, (o.label for o in facts.objects), (lb.label for lb in facts.labels))


def hallucination(turns: Sequence[common_pb2.Turn], images: Sequence[common_pb2.ImageRef]) -> Hallucination | None:
    """Unsupported concrete-noun mentions of a dialogue's turns; None when no photo carries any evidence."""
    with_facts = sum(has_perception(ref) for ref in images)
    with_caption = sum(bool(ref.caption.strip()) for ref in images)
    if not with_facts and not with_caption:
        return None
    per_photo = [photo_support(ref) for ref in images]
    story = frozenset().union(*per_photo)
    mentions = elsewhere = 0
    unsupported: Counter[str] = Counter()
    for turn in turns:
        photos = [i for i in turn.image_refs if 0 <= i < len(images)]
        support = frozenset().union(*(per_photo[i] for i in photos)) if photos else story
        for term in noun_mentions(turn.text):
            mentions += 1
            if not is_supported(term, support):
                unsupported[term] += 1
                elsewhere += is_supported(term, story)
    return Hallucination(mentions, unsupported, with_facts, with_caption, elsewhere)
