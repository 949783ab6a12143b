"""Where a run's unsupported object mentions come from, and what the paper's own transcripts score on the same evidence.

The plan's hallucination measure (vispod.metrics.hallucination) checks a turn against the photos it refers to. This
reads a run's committed dialogue archive and splits each system's mentions, story by story: supported by the turn's
own photos; unsupported there but supported by another photo of the story (the wrong scene); supported by no photo
(unsupported anywhere). Evidence is what the metric uses: each photo's human caption and perception facts.

The paper's two transcripts refer to no photo, so they can only be checked story-wide: against the captions alone (as
the plan's results report them) and against the captions plus the perception facts the systems read (the same
photos through the same detector). Both systems and references get that story-wide rate too, for a like-for-like
line. Reported beside the plan's results; nothing here enters a decision.

    python -m vispod.evaluation.hallucination_sources results/mini-paper/v2/test   # -> hallucination_sources.json
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from vispod.common.visual_vocabulary import is_supported, noun_mentions, supporting_terms
from vispod.evaluation.mini_paper.records import REFERENCES, dataset_root, story_captions, story_text
from vispod.gate.html_parts import write_atomic
from vispod.metrics.speaker_turns import parse_turns

OUTPUT = "hallucination_sources.json"


@dataclass(frozen=True)
class Sources:
    mentions: int = 0
    own_photo: int = 0       # supported by a photo the turn refers to (the whole story for a turn that names none)
    other_photo: int = 0     # not by its own photos, but by another photo of the story: the wrong scene
    nowhere: int = 0         # by no photo of the story
    story_wide: int = 0      # unsupported by every photo of the story together (= nowhere, for any turn)

    @property
    def rate(self) -> float:
        """The plan's measure: unsupported by the turn's own photos."""
        return (self.other_photo + self.nowhere) / self.mentions if self.mentions else 0.0

    def share(self, part: int) -> float:
        return part / self.mentions if self.mentions else 0.0


def photo_evidence(caption: str, facts: Mapping[str, Any] | None) -> frozenset[str]:
    """What one photo supports: its caption and its facts (vispod.v1.Perception as JSON)."""
    facts = facts or {}
    return supporting_terms(caption, (o.get("label", "") for o in facts.get("objects", [])),
                            (lb.get("label", "") for lb in facts.get("labels", [])))


def sources(turns: Iterable[tuple[str, Sequence[int]]], photos: Sequence[frozenset[str]]) -> Sources:
    """The mentions of (text, 0-based photo indices) turns against per-photo evidence."""
    story = frozenset().union(*photos)
    mentions = own = other = nowhere = 0
    for text, refs in turns:
        named = [i for i in refs if 0 <= i < len(photos)]
        support = frozenset().union(*(photos[i] for i in named)) if named else story
        for term in noun_mentions(text):
            mentions += 1
            if is_supported(term, support):
                own += 1
            elif is_supported(term, story):
                other += 1
            else:
                nowhere += 1
    return Sources(mentions, own, other, nowhere, nowhere)


def _summary(per_story: Mapping[str, list[Sources]]) -> dict[str, Any]:
    """Story means (a story's dialogues averaged first, as the plan does), and the pooled shares."""
    def story_mean(value) -> float:
        return fmean(fmean(value(s) for s in runs) for runs in per_story.values())

    pooled = Sources(*(sum(getattr(s, f) for runs in per_story.values() for s in runs)
                       for f in ("mentions", "own_photo", "other_photo", "nowhere", "story_wide")))
    return {"stories": len(per_story), "rate_own_photos": round(story_mean(lambda s: s.rate), 4),
            "rate_story_wide": round(story_mean(lambda s: s.share(s.story_wide)), 4),
            "mentions": pooled.mentions, "share_other_photo": round(pooled.share(pooled.other_photo), 4),
            "share_nowhere": round(pooled.share(pooled.nowhere), 4)}


def analyse(run_dir: Path, dataset: Path | None = None) -> dict[str, Any]:
    """The breakdown of every system in `run_dir`/dialogues.jsonl.gz, and the paper's transcripts of its stories."""
    dataset = dataset or dataset_root()
    with gzip.open(run_dir / "dialogues.jsonl.gz", "rt", encoding="utf-8") as archive:
        rows = [json.loads(line) for line in archive]
    captions = {sid: story_captions(dataset, sid) for sid in sorted({r["story_id"] for r in rows})}
    # the photos' facts: every system that read facts saw the same ones (the same photos, the same detector)
    facts = {r["story_id"]: r["facts"] for r in rows if r.get("facts")}
    per_system: dict[str, dict[str, list[Sources]]] = defaultdict(lambda: defaultdict(list))
    failed: dict[str, int] = defaultdict(int)
    for r in rows:
        # a failed dialogue has no mention and scores 0, as in the plan's results (which this reproduces): counted
        failed[r["system"]] += r.get("status") != "STATUS_OK"
        sid = r["story_id"]
        saw_facts = bool(r.get("facts"))
        photos = [photo_evidence(c, f if saw_facts else None)
                  for c, f in zip(captions[sid], r.get("facts") or [None] * len(captions[sid]), strict=True)]
        per_system[r["system"]][sid].append(
            sources(((t["text"], t.get("image_refs") or []) for t in r["turns"]), photos))
    references: dict[str, Any] = {}
    for key, info in REFERENCES.items():
        bare: dict[str, list[Sources]] = {}
        with_facts: dict[str, list[Sources]] = {}
        for sid, caps in captions.items():
            text = story_text(dataset, sid, key)
            if text is None or sid not in facts:
                continue
            turns = [(t.text, ()) for t in parse_turns(text)]
            bare[sid] = [sources(turns, [photo_evidence(c, None) for c in caps])]
            with_facts[sid] = [sources(turns, [photo_evidence(c, f) for c, f in zip(caps, facts[sid], strict=True)])]
        if bare:
            references[info.name] = {"captions_only": _summary(bare), "captions_and_facts": _summary(with_facts)}
    return {"what": __doc__.split("\n\n")[0], "run": "/".join(Path(run_dir).resolve().parts[-2:]),  # v<N>/<split>
            "systems": {name: {**_summary(stories), "failed_dialogues": failed[name]}
                        for name, stories in per_system.items()},
            "paper_transcripts_story_wide": references}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vispod.evaluation.hallucination_sources",
                                 description="where a run's unsupported object mentions come from")
    ap.add_argument("run_dir", type=Path,
                    help="a results folder with dialogues.jsonl.gz (results/mini-paper/v<N>/<split>)")
    args = ap.parse_args(argv)
    doc = analyse(args.run_dir)
    write_atomic(args.run_dir / OUTPUT, json.dumps(doc, indent=1) + "\n")
    for name, s in doc["systems"].items():
        print(f"{name:45s} own photos {s['rate_own_photos']:.3f}  story-wide {s['rate_story_wide']:.3f}  "
              f"wrong scene {s['share_other_photo']:.2f}  nowhere {s['share_nowhere']:.2f}  ({s['mentions']} mentions, "
              f"{s['failed_dialogues']} failed dialogues)")
    for name, r in doc["paper_transcripts_story_wide"].items():
        print(f"{name:45s} story-wide: captions only {r['captions_only']['rate_story_wide']:.3f}, "
              f"captions and facts {r['captions_and_facts']['rate_story_wide']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
