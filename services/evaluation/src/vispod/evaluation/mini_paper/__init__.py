"""The paper in miniature (issue 17): evaluate every system on the held-out stories, decide, write the report.

    from vispod.evaluation.mini_paper import SystemInfo, SystemRun, StoryOutput, eval_stories, reference_runs, run
    stories = eval_stories()                                   # the 20 held-out stories and their captions
    runs = [SystemRun(SystemInfo("smollm2-135m+lora", weights=..., adapter="podcast@1"), outputs), ...]
    results = run(runs + reference_runs([s.story_id for s in stories]), out_dir=Path("out/mini-paper"),
                  tuned="smollm2-135m+lora", bigger_base="gemma3-270m-base", small_base="smollm2-135m-base",
                  adapter="podcast@1", train_ids=train_story_ids)
    results["gate"]["decision"]                                # "promote" | "reject", with its reasons

Writes results.json (numbers) and report.html (self-contained) under out_dir.
"""

from __future__ import annotations

import json
from pathlib import Path

from vispod.common.statistics import finite
from vispod.evaluation.mini_paper.evaluate import evaluate
from vispod.evaluation.mini_paper.records import (
    EvalStory,
    StoryOutput,
    SystemInfo,
    SystemRun,
    dataset_root,
    eval_stories,
    reference_runs,
)
from vispod.evaluation.mini_paper.report import render
from vispod.gate.html_parts import write_atomic

__all__ = ["EvalStory", "StoryOutput", "SystemInfo", "SystemRun", "dataset_root", "eval_stories", "evaluate",
           "reference_runs", "render", "run"]


def run(systems: list[SystemRun], out_dir: Path, **kwargs: object) -> dict:
    """evaluate() (see its arguments), then write out_dir/results.json and out_dir/report.html."""
    results = finite(evaluate(systems, **kwargs))
    out_dir = Path(out_dir)
    write_atomic(out_dir / "results.json", json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    write_atomic(out_dir / "report.html", render(results))
    return results
