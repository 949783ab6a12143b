"""`vispod eval`: the paper's table and ours for an evaluation set. The developer kit's CLI registers it: the
research harness is never in an image."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from vispod.common.settings import load_settings
from vispod.gate.clients import Clients
from vispod.gate.evalset import EvalSetError, load_eval_set
from vispod.gate.settings import GateSettings


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _generate_specs(values: list[str]) -> dict[str, str]:
    """`NAME[=ADAPTER]` (repeatable or comma-separated); no adapter = the generator's active one."""
    out: dict[str, str] = {}
    for value in values:
        for spec in _csv(value):
            name, _, adapter = spec.partition("=")
            out[name] = adapter
    return out


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="evaluate systems on a set of story folders: paper table, robust metrics, "
                                     "grounding, judges -> Markdown, CSV, HTML")
    ev.add_argument("--set", dest="set_dir", type=Path, required=True,
                    help="folder of story_<id>/ folders (layout of shared/datasets/vist-podcast-50)")
    ev.add_argument("--systems", type=_csv, required=True,
                    help="comma-separated systems = transcript names (<system>.txt); the first is A in judging")
    ev.add_argument("--generate", action="append", default=[], metavar="NAME[=ADAPTER]",
                    help="generate transcripts for system NAME with the generator service first (ADAPTER: an "
                         "adapter id, 'base', or empty for the active one); written under --out")
    ev.add_argument("--out", type=Path, default=Path("eval-report"), help="output folder (default ./eval-report)")
    ev.add_argument("--judges", type=_csv, default=[], help="judge panel, e.g. local or openai:gpt-4o (default: none)")
    ev.add_argument("--criteria", type=_csv, default=[], help="judge criteria (default: the judge's)")
    ev.add_argument("--judge-addr", default="", help="JudgeService address (default: start one in-process)")
    ev.add_argument("--metrics-addr", default="", help="MetricsService address (default: start one in-process)")
    ev.add_argument("--generator-addr", default="",
                    help="GeneratorService address (default: VISPOD_GATE_GENERATOR_ADDR)")
    ev.add_argument("--no-grounding", action="store_true", help="no CLIP grounding (no CLIP model)")
    ev.add_argument("--no-text-model", action="store_true",
                    help="in-process metrics without MiniLM: no aligned grounding, no naturalness")
    ev.add_argument("--clip-model", default="ViT-B-32", help="open_clip model of the in-process metrics service")
    ev.add_argument("--clip-weights", type=Path, default=None, help="local open_clip checkpoint (in-process metrics)")
    ev.add_argument("--clip-random-weights", action="store_true",
                    help="in-process metrics without a checkpoint: RANDOM CLIP weights, labelled (measure nothing)")
    ev.add_argument("--max-stories", type=int, default=0, help="only the first N stories (0: all)")
    ev.add_argument("--timeout", type=float, default=600.0, help="seconds per service call")
    ev.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ev.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    # deferred: `vispod` registers every command at each start; the harness pulls matplotlib and two services (~1 s)
    from vispod.evaluation.eval_report import render_markdown, write_eval_report
    from vispod.evaluation.local_services import local_judge, local_metrics
    from vispod.evaluation.runner import EvalOptions, run_evaluation

    try:
        stories = load_eval_set(args.set_dir, args.max_stories)
    except EvalSetError as exc:
        print(f"vispod eval: {exc}", file=sys.stderr)
        return 2
    generate = _generate_specs(args.generate)
    systems = list(dict.fromkeys([*args.systems, *generate]))
    settings = load_settings(GateSettings)
    out_dir: Path = args.out
    roots = [args.set_dir.resolve(), out_dir.resolve()]
    options = EvalOptions(systems=systems, generate=generate, out_dir=out_dir, judges=args.judges,
                          criteria=args.criteria, judge=bool(args.judges), speakers=settings.speakers,
                          target_words=settings.target_words, seed=settings.seed, timeout=args.timeout)

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[eval] {message}", file=sys.stderr, flush=True)

    grounding = not args.no_grounding
    if grounding and not args.metrics_addr and args.clip_weights is None and not args.clip_random_weights:
        print("vispod eval: grounding needs CLIP weights: --clip-weights FILE, or --clip-random-weights (random, "
              "labelled: the scores measure nothing), or --no-grounding, or --metrics-addr", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        metrics_addr = args.metrics_addr or stack.enter_context(local_metrics(
            roots, grounding=grounding, clip_model=args.clip_model, clip_weights=args.clip_weights,
            clip_random=args.clip_random_weights, text_model=not args.no_text_model))
        judge_addr = args.judge_addr
        if args.judges and not judge_addr:
            judge_addr = stack.enter_context(local_judge(roots, args.judges, args.criteria))
            options.judges = []  # the in-process panel is exactly the requested one
        clients = Clients(args.generator_addr or settings.generator_addr, metrics_addr, judge_addr)
        stack.callback(clients.close)
        result = run_evaluation(stories, args.set_dir, clients, options, progress)
    if args.no_grounding:
        result.notes.append("grounding not computed (--no-grounding)")
    report = write_eval_report(result, out_dir)
    print(render_markdown(result))
    print(f"\nwritten: {report.markdown}, {report.html}, {report.per_story_csv}, {report.summary_csv}, {report.json}")
    return 0
