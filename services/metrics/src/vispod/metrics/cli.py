"""`vispod metrics …`: style and grounding metrics of transcript files, one JSON object per line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vispod.common.settings import load_settings
from vispod.metrics.clip_model import RANDOM_WEIGHTS_NOTE
from vispod.metrics.image_cache import ImageInput
from vispod.metrics.scoring import build_grounding
from vispod.metrics.settings import MetricsSettings
from vispod.metrics.speaker_turns import parse_turns
from vispod.metrics.style import MODES, style_of_text


def _style(args: argparse.Namespace) -> int:
    status = 0
    for name in args.files:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(json.dumps({"file": name, "error": str(exc)}), flush=True)
            status = 1
            continue
        result = style_of_text(text, args.mode)
        print(json.dumps({"file": name, "mode": args.mode, **result.as_dict()}), flush=True)
    return status


def _grounding(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {"grounding_enabled": True}
    if args.clip_weights:
        overrides.update(clip_weights=Path(args.clip_weights), clip_random_init=False)
    if args.random_weights:
        overrides.update(clip_weights=None, clip_random_init=True)
    if args.clip_model:
        overrides["clip_model"] = args.clip_model
    settings = load_settings(MetricsSettings, **overrides)
    scorer = build_grounding(settings)
    assert scorer is not None
    transcript = Path(args.dialogue).read_text(encoding="utf-8")
    speech = " ".join(t.text for t in parse_turns(transcript))

    def inputs(paths: list[str]) -> list[ImageInput]:
        return [ImageInput.from_bytes(Path(p).read_bytes(), settings.images, p) for p in paths]

    result = scorer.score(speech, inputs(args.images), transcript=transcript, distractors=inputs(args.distractor))
    if result.random_weights:
        print(f"WARNING: {RANDOM_WEIGHTS_NOTE}", file=sys.stderr)
    print(json.dumps({"file": args.dialogue, "images": args.images, **result.as_dict()}), flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    metrics = sub.add_parser("metrics", help="podcast style and visual grounding metrics")
    msub = metrics.add_subparsers(dest="metrics_command", metavar="SUBCOMMAND", required=True)

    style = msub.add_parser("style", help="style metrics of transcript files (one JSON object per file)")
    style.add_argument("--mode", choices=MODES, default="robust",
                       help="paper: the SPoRC-VIST paper's definitions; robust (default): real speaker turns")
    style.add_argument("files", nargs="+", metavar="FILE")
    style.set_defaults(func=_style)

    grounding = msub.add_parser("grounding", help="CLIPScore of a dialogue against its images")
    grounding.add_argument("--dialogue", required=True, metavar="FILE")
    grounding.add_argument("images", nargs="+", metavar="IMAGE")
    grounding.add_argument("--distractor", action="append", default=[], metavar="IMAGE",
                           help="an image of another set, for retrieval accuracy with distractors (repeatable)")
    grounding.add_argument("--clip-model", help="open_clip architecture (default: settings, ViT-B-32)")
    weights = grounding.add_mutually_exclusive_group()
    weights.add_argument("--clip-weights", metavar="PATH", help="local open_clip checkpoint (never downloaded)")
    weights.add_argument("--random-weights", action="store_true",
                         help="random-initialised CLIP: for trying the pipeline only, the scores measure nothing")
    grounding.set_defaults(func=_grounding)
