"""Calibrate vispod.metrics.caption_grounding.COVERAGE_THRESHOLD on the paper's transcripts (numbers: its docstring).

Matched: each eval story's 5 VIST captions against that story's published transcript; mismatched: every other
eval story's captions against it. Prints the rates at each threshold, the ROC AUC and Youden's best threshold.

    .venv/bin/python benchmarks/calibrate_caption_grounding.py [--dataset ../shared/datasets/vist-podcast-50]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from vispod.common.settings import DatasetSettings
from vispod.common.story_folder import read_story
from vispod.evaluation.splits import DEFAULT_SPLIT, load_split
from vispod.metrics.caption_grounding import CaptionGrounder
from vispod.metrics.speaker_turns import parse_turns

SYSTEMS = ("qwen3-vl-32b-sporc-lora", "qwen3-vl-235b-base")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=DatasetSettings().vist_podcast_50)
    args = ap.parse_args()
    grounder = CaptionGrounder()
    started = time.monotonic()
    stories = {sid: read_story(args.dataset / f"story_{sid}") for sid in load_split(DEFAULT_SPLIT).eval}
    captions = {sid: [e.caption for e in story.entries] for sid, story in stories.items()}
    all_captions = [c for caps in captions.values() for c in caps]
    owners = [(sid, i) for sid, caps in captions.items() for i in range(len(caps))]
    matched, mismatched = [], []
    for system in SYSTEMS:
        for sid, story in stories.items():
            text = story.text(system)
            if text is None:
                raise SystemExit(f"story {sid} has no {system} transcript")
            turns = [t.text for t in parse_turns(text)]
            rows = grounder.similarities(all_captions, turns)  # every eval caption against this transcript
            for (other, _), row in zip(owners, rows, strict=True):
                (matched if other == sid else mismatched).append(max(row))
    a, b = np.array(matched), np.array(mismatched)
    print(f"{len(a)} matched, {len(b)} mismatched photo scores in {time.monotonic() - started:.0f} s")
    print(f"matched mean {a.mean():.3f} p10 {np.percentile(a, 10):.3f}; "
          f"mismatched mean {b.mean():.3f} p90 {np.percentile(b, 90):.3f}")
    print(f"ROC AUC {(a[:, None] > b[None, :]).mean():.3f}")
    grid = np.round(np.arange(0.20, 0.50, 0.01), 2)
    for t in grid:
        print(f"  {t:.2f}  matched {(a >= t).mean():.3f}  mismatched {(b >= t).mean():.3f}")
    best = max(grid, key=lambda t: (a >= t).mean() - (b >= t).mean())
    print(f"Youden's best threshold {best:.2f}")


if __name__ == "__main__":
    main()
