"""`vispod dataset …` commands: build training pairs, sample or inspect SPoRC folders, list VIST eval sets."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from vispod.common.kafka_address import bootstrap_from
from vispod.common.settings import load_settings
from vispod.dataset.excerpts import ExcerptConfig
from vispod.dataset.sporc import LoadReport, iter_episodes
from vispod.dataset.sporc_synthetic import make_episodes, write_jsonl_layout, write_parquet_layout
from vispod.dataset.vist import DEFAULT_EVAL_ROOT, DatasetAbsent, load_eval_stories
from vispod.synth.settings import SynthSettings


def register(sub: argparse._SubParsersAction) -> None:
    dataset = sub.add_parser("dataset", help="training pairs from SPoRC + synthesized scenes; VIST eval sets")
    dsub = dataset.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    p = dsub.add_parser("build", help="build (or resume) Qwen-VL training pairs in --out")
    p.add_argument("--sporc", type=Path, required=True, help="a SPoRC folder (JSONL.gz pair or turns/ Parquet)")
    p.add_argument("--n", type=int, default=4000, help="pairs to build")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synth-mode", choices=["local", "kafka"], default="local")
    p.add_argument(
        "--model-path",
        type=Path,
        default=None,
        help="local mode: diffusers pipeline folder (default VISPOD_SYNTH_MODEL_PATH)",
    )
    p.add_argument("--tiny-random", action="store_true",
                   help="local mode without a model: draw with a tiny RANDOM pipeline (pairs say random_weights)")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None, choices=["auto", "float32", "float16", "bfloat16"])
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="local mode: torch CPU threads")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--guidance", type=float, default=7.0)
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--min-words", type=int, default=600)
    p.add_argument("--max-words", type=int, default=800)
    p.add_argument("--language", action="append", default=None, help="keep episodes in this language (repeatable)")
    p.add_argument("--allow-explicit", action="store_true")
    p.add_argument("--max-overlap", type=float, default=0.15)
    p.add_argument("--min-score", type=float, default=0.0)
    p.add_argument("--max-per-episode", type=int, default=1)
    p.add_argument("--episode-share", type=float, default=1.0, help="seeded share of episodes considered")
    p.add_argument("--inflight", type=int, default=None, help="requests in flight (default 1 local, 4 kafka)")
    p.add_argument("--timeout", type=float, default=600.0, help="kafka mode: seconds to wait for images")
    p.add_argument("--bootstrap", default=None, help="kafka mode: broker (default VISPOD_KAFKA_BOOTSTRAP)")
    p.add_argument("--topic-prefix", default=None)
    p.add_argument(
        "--artifact-root",
        type=Path,
        action="append",
        default=None,
        help="kafka mode: folder the synth service writes images to (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_build)

    p = dsub.add_parser("sample-sporc", help="write a small made-up corpus in a SPoRC layout (demo, tests)")
    p.add_argument("out", type=Path)
    p.add_argument("--layout", choices=["jsonl", "parquet"], default="jsonl")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_sample)

    p = dsub.add_parser("inspect-sporc", help="read a SPoRC folder: episodes, turns, malformed rows by reason")
    p.add_argument("sporc", type=Path)
    p.set_defaults(func=_inspect)

    p = dsub.add_parser("vist-eval", help="list the stories of a vist-podcast-50-style evaluation folder")
    p.add_argument("--root", type=Path, default=None)
    p.add_argument("--complete-only", action="store_true")
    p.set_defaults(func=_vist_eval)


def _build(args: argparse.Namespace) -> int:
    # deferred: `vispod` registers every command at each start; the build and its synth clients pull ~200 modules
    from vispod.dataset.build import BuildConfig, SynthParams, build_dataset

    cfg = BuildConfig(
        sporc=args.sporc,
        out=args.out,
        n=args.n,
        seed=args.seed,
        excerpt=ExcerptConfig(
            min_words=args.min_words,
            max_words=args.max_words,
            languages=tuple(args.language or ["en"]),
            allow_explicit=args.allow_explicit,
            max_overlap=args.max_overlap,
            min_score=args.min_score,
            max_per_episode=args.max_per_episode,
        ),
        synth=SynthParams(args.width, args.height, args.steps, args.guidance, args.negative_prompt),
        episode_share=args.episode_share,
        inflight=args.inflight or (1 if args.synth_mode == "local" else 4),
        progress=not args.no_progress,
    )
    overrides = {
        k: v
        for k, v in {
            "model_path": args.model_path,
            "device": args.device,
            "dtype": args.dtype,
            "batch_size": args.batch_size,
            "cpu_threads": args.threads,
            "tiny_if_unset": True if args.tiny_random else None,
        }.items()
        if v is not None
    }
    settings = load_settings(SynthSettings, **overrides)
    if args.synth_mode == "local":
        from vispod.dataset.clients import LocalSynthClient  # deferred: as the build above
        from vispod.synth.engine import Synthesizer  # deferred: as the build above
        from vispod.synth.service import resolve_model

        settings = resolve_model(settings)
        # The build's own width/height/steps must fit the local engine's limits.
        settings = settings.model_copy(
            update={
                "max_side": max(settings.max_side, args.width, args.height),
                "max_pixels": max(settings.max_pixels, args.width * args.height),
                "max_steps": max(settings.max_steps, args.steps),
            }
        )
        client = LocalSynthClient(Synthesizer(settings))
    else:
        from vispod.dataset.clients import KafkaSynthClient  # deferred: as the build above

        kafka = settings.kafka.model_copy(update={"bootstrap": bootstrap_from(args.bootstrap)})
        if args.topic_prefix:
            kafka = kafka.model_copy(update={"topic_prefix": args.topic_prefix})
        roots = args.artifact_root or [settings.artifact_root]
        client = KafkaSynthClient(kafka, [Path(r).resolve() for r in roots], timeout_s=args.timeout)
    try:
        result = build_dataset(cfg, client)
    finally:
        client.close()
    summary = asdict(result)
    summary["out"] = str(result.out)
    print(json.dumps(summary, indent=1))
    return 0


def _sample(args: argparse.Namespace) -> int:
    episodes = make_episodes(args.episodes, args.seed)
    writer = write_jsonl_layout if args.layout == "jsonl" else write_parquet_layout
    print(writer(args.out, episodes))
    print("made-up dialogues for demos and tests: NOT SPoRC data", file=sys.stderr)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    report = LoadReport()
    speakers = 0
    for episode in iter_episodes(args.sporc, report):
        speakers += len({t.speaker for t in episode.turns})
    print(json.dumps({**report.as_dict(), "speakers": speakers}, indent=1))
    return 0


def _vist_eval(args: argparse.Namespace) -> int:
    try:
        stories = load_eval_stories(args.root or DEFAULT_EVAL_ROOT, complete_only=args.complete_only)
    except DatasetAbsent as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for s in stories:
        print(
            json.dumps(
                {
                    "story_id": s.story_id,
                    "complete": s.complete,
                    "images": [str(i.path) if i.path else None for i in s.images],
                    "captions": [i.caption for i in s.images],
                    "transcripts": sorted(s.transcripts),
                }
            )
        )
    return 0
