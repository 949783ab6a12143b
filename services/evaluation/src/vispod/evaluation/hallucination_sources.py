"""Where a run's unsupported object mentions come from, and what the paper's own transcripts score on the same evidence.

The plan's hallucination measure (vispod.metrics.hallucination) checks a turn against the photos it refers to. This
runs that measure on a run's committed dialogue archive and splits each system's unsupported mentions, story by
story: supported by another photo of the story (the wrong scene), or by no photo (unsupported anywhere). Evidence is
what the metric uses: each photo's human caption and perception facts.

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
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

from google.protobuf import json_format

from vispod.evaluation.mini_paper.records import REFERENCES, dataset_root, story_captions, story_text
from vispod.gate.html_parts import write_atomic
from vispod.metrics.hallucination import Hallucination, hallucination
from vispod.metrics.speaker_turns import parse_turns
from vispod.v1 import common_pb2

OUTPUT = "hallucination_sources.json"


def photo_refs(captions: Sequence[str], facts: Sequence[Mapping[str, Any]] | None) -> list[common_pb2.ImageRef]:
    """The photos as the metrics service sees them: each caption, and its perception facts (Perception as JSON)."""
    refs = [common_pb2.ImageRef(caption=c) for c in captions]
    for ref, doc in zip(refs, facts or (), strict=False):
        if doc:   # a photo no perception ran on is null in the archive
            json_format.ParseDict(doc, ref.perception)
    return refs


def mentions_of(turns: Iterable[tuple[str, Sequence[int]]], refs: Sequence[common_pb2.ImageRef]) -> Hallucination:
    """The plan's measure itself (vispod.metrics.hallucination) on (text, 0-based photo indices) turns."""
    found = hallucination([common_pb2.Turn(text=text, image_refs=list(photos)) for text, photos in turns], refs)
    return found if found is not None else Hallucination(0, Counter(), 0, 0)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _summary(per_story: Mapping[str, list[Hallucination]]) -> dict[str, Any]:
    """Story means (a story's dialogues averaged first, as the plan does), and the pooled shares."""
    def story_mean(value: Callable[[Hallucination], float]) -> float:
        return fmean(fmean(value(h) for h in runs) for runs in per_story.values())

    every = [h for runs in per_story.values() for h in runs]
    mentions = sum(h.mentions for h in every)
    return {"stories": len(per_story), "rate_own_photos": round(story_mean(lambda h: h.rate), 4),
            "rate_story_wide": round(story_mean(lambda h: _share(h.nowhere, h.mentions)), 4),
            "mentions": mentions, "share_other_photo": round(_share(sum(h.elsewhere for h in every), mentions), 4),
            "share_nowhere": round(_share(sum(h.nowhere for h in every), mentions), 4)}


def analyse(run_dir: Path, dataset: Path | None = None) -> dict[str, Any]:
    """The breakdown of every system in `run_dir`/dialogues.jsonl.gz, and the paper's transcripts of its stories."""
    dataset = dataset or dataset_root()
    with gzip.open(run_dir / "dialogues.jsonl.gz", "rt", encoding="utf-8") as archive:
        rows = [json.loads(line) for line in archive]
    captions = {sid: story_captions(dataset, sid) for sid in sorted({r["story_id"] for r in rows})}
    # the photos' facts: every system that read facts saw the same ones (the same photos, the same detector)
    facts: dict[str, list] = {}
    for r in rows:
        if any(r.get("facts") or ()):
            facts.setdefault(r["story_id"], r["facts"])
    per_system: dict[str, dict[str, list[Hallucination]]] = defaultdict(lambda: defaultdict(list))
    failed: dict[str, int] = defaultdict(int)
    for r in rows:
        # a failed dialogue has no mention and scores 0, as in the plan's results (which this reproduces): counted
        failed[r["system"]] += r.get("status") != "STATUS_OK"
        sid = r["story_id"]
        per_system[r["system"]][sid].append(mentions_of(((t["text"], t.get("image_refs") or []) for t in r["turns"]),
                                                        photo_refs(captions[sid], r.get("facts"))))
    references: dict[str, Any] = {}
    for key, info in REFERENCES.items():
        bare: dict[str, list[Hallucination]] = {}
        with_facts: dict[str, list[Hallucination]] = {}
        for sid, caps in captions.items():
            text = story_text(dataset, sid, key)
            if text is None or sid not in facts:
                continue
            turns = [(t.text, ()) for t in parse_turns(text)]
            bare[sid] = [mentions_of(turns, photo_refs(caps, None))]
            with_facts[sid] = [mentions_of(turns, photo_refs(caps, facts[sid]))]
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
