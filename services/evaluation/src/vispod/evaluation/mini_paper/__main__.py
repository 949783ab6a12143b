"""Evaluate generated outputs saved as JSON, then write results.json and report.html.

    python -m vispod.evaluation.mini_paper runs.json --out out/mini-paper [--no-references] [--resamples 2000]
        [--plan plans/mini-paper-v3.yaml]

runs.json: {"tuned": NAME, "bigger_base": NAME, "small_base": NAME, "baseline": NAME (optional, default
small_base), "adapter": "name@version", "train_ids": [story ids trained on],
"systems": [{"name", "weights", "saw", "is_base_model", "adapter", "outputs": [{"story_id", "captions",
"prompt", "text", "turns": [[speaker, text, [photo indices]], ...], "perception": [Perception as JSON per photo]}]}]}
The paper's two published transcripts of the same stories are added as reference systems unless
--no-references. Exit status 0 whatever the decision; the decision is in results.json and printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vispod.evaluation.mini_paper import StoryOutput, SystemInfo, SystemRun, reference_runs, run
from vispod.evaluation.plan import CURRENT_PLAN, load_plan


def load_runs(path: Path) -> tuple[list[SystemRun], dict]:
    """The systems of a runs.json and its other keys (roles, adapter, train_ids)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    runs = []
    for system in doc.pop("systems"):
        outputs = [StoryOutput(str(o["story_id"]), list(o["captions"]), o.get("prompt", ""), o["text"],
                               [(t[0], t[1], list(t[2])) for t in o.get("turns", [])], list(o.get("perception", [])))
                   for o in system.pop("outputs")]
        runs.append(SystemRun(SystemInfo(**system), outputs))
    return runs, doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vispod.evaluation.mini_paper", description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path)
    ap.add_argument("--out", type=Path, default=Path("out/mini-paper"))
    ap.add_argument("--dataset", type=Path, default=None, help="vist-podcast-50 (default: VISPOD_DATASETS_ROOT)")
    ap.add_argument("--no-references", action="store_true")
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plan", type=Path, default=CURRENT_PLAN, help="the plan fixed before the run (its decision "
                    "rule decides; results.json records its sha256)")
    args = ap.parse_args(argv)
    runs, doc = load_runs(args.runs)
    if not args.no_references:
        ids = list(dict.fromkeys(o.story_id for r in runs for o in r.outputs))
        runs += reference_runs(ids, args.dataset)
    results = run(runs, args.out, tuned=doc["tuned"], bigger_base=doc["bigger_base"], small_base=doc["small_base"],
                  baseline=doc.get("baseline"), adapter=doc.get("adapter"), train_ids=doc.get("train_ids", []),
                  n_resamples=args.resamples, seed=args.seed, plan=load_plan(args.plan))
    gate = results["gate"]
    print(f"gate: {gate['decision']} {gate['adapter']}: {gate['reasons'][0]}")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'report.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
