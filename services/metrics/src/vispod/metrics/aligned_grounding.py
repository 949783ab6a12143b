"""Does each scene talk about its own photo? Scene turns against their photo's caption, over a shuffled baseline.

Caption coverage (caption_grounding.py) is lenient: a photo counts as discussed when *any* turn anywhere comes
close to its caption, and captions of one story resemble each other (41.5% of caption pairs within a story
already reach the coverage threshold with each other). This measure uses the scene structure instead:

- a *scene* is the set of turns whose `image_refs` name photo i (Turn.image_refs, 0-based);
- aligned_i = mean cosine (all-MiniLM-L6-v2, real weights) of scene i's turns to photo i's caption;
- shuffled_i = the same turns against each *other* captioned photo of the story, averaged: the exact mean over
  every shuffle of the captions within the story, so no random seed is involved;
- margin = mean over scenes of aligned_i − shuffled_i.

A dialogue that talks about the story in general but not about each photo in its scene has a margin near 0,
however high its coverage; one that talks about another story's photos has aligned ≈ shuffled as well. A scene
is scored when its photo has a caption, some other photo of the story has one too, and a non-blank turn refers
to it; with no scene scored (e.g. a transcript without photo references) `scenes` is 0 and aligned, shuffled and
margin are 0 and mean nothing. Coverage and turn retrieval (caption_grounding.grounding_of) come from the same
similarities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

from vispod.metrics.caption_grounding import CaptionGrounder, CaptionGrounding, grounding_of
from vispod.v1 import common_pb2


@dataclass(frozen=True)
class AlignedGrounding:
    aligned: float
    shuffled: float
    margin: float
    scenes: int
    scene_margins: tuple[float, ...]  # per scored scene, in photo order
    caption: CaptionGrounding  # coverage and retrieval over the captioned photos

    def to_proto(self) -> common_pb2.AlignedGroundingMetrics:
        return common_pb2.AlignedGroundingMetrics(
            aligned=self.aligned, shuffled=self.shuffled, margin=self.margin, scenes=self.scenes,
            coverage=self.caption.coverage or 0.0, coverage_threshold=self.caption.threshold,
            retrieval_hits=self.caption.retrieval_hits, retrieval_turns=self.caption.retrieval_n,
            weights=self.caption.weights)


def aligned_grounding(grounder: CaptionGrounder, captions: Sequence[str], turns: Sequence[str],
                      turn_photos: Sequence[Sequence[int]]) -> AlignedGrounding | None:
    """Scene-aligned grounding of one dialogue; None when no photo has a caption. `captions[i]`: photo i's caption
    ("" for none); `turn_photos[t]`: the photos turn t refers to (empty: none)."""
    if len(turn_photos) != len(turns):
        raise ValueError(f"turn_photos has {len(turn_photos)} entries for {len(turns)} turns")
    captioned = [i for i, c in enumerate(captions) if c.strip()]
    if not captioned:
        return None
    row_of = {photo: row for row, photo in enumerate(captioned)}
    kept = [t for t, text in enumerate(turns) if text.strip()]
    sims = grounder.similarities([captions[i] for i in captioned], [turns[t] for t in kept])
    margins, aligned, shuffled = [], [], []
    for photo in captioned:
        columns = [col for col, t in enumerate(kept) if photo in turn_photos[t]]
        if not columns or len(captioned) < 2:
            continue
        own = fmean(sims[row_of[photo]][c] for c in columns)
        others = fmean(fmean(sims[row_of[other]][c] for c in columns) for other in captioned if other != photo)
        aligned.append(own)
        shuffled.append(others)
        margins.append(own - others)
    single = [refs[0] if len(refs) == 1 and refs[0] in row_of else None for refs in turn_photos]
    caption = grounding_of(sims, kept, [None if p is None else row_of[p] for p in single], grounder.threshold,
                           grounder.weights)
    if not margins:
        return AlignedGrounding(0.0, 0.0, 0.0, 0, (), caption)
    return AlignedGrounding(aligned=fmean(aligned), shuffled=fmean(shuffled), margin=fmean(margins),
                            scenes=len(margins), scene_margins=tuple(margins), caption=caption)
