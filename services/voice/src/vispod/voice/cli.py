"""`vispod speak DIALOGUE --out FILE`: a transcript (.txt) or dialogue.json as a podcast (.opus/.ogg or .wav)."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from vispod.common.settings import load_settings
from vispod.voice.dialogue import DialogueError, load_dialogue_file
from vispod.voice.engines import EngineError, build_engine
from vispod.voice.podcast import Podcaster
from vispod.voice.settings import VoiceSettings

OUT_SUFFIXES = (".opus", ".ogg", ".wav")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("speak", help="render a dialogue as a podcast, one voice per speaker, offline")
    p.add_argument("dialogue", type=Path, help='a "Name: text" transcript .txt, or dialogue.json {"turns": [...]}')
    p.add_argument("--out", type=Path, required=True, help="output file: .opus/.ogg (Ogg Opus) or .wav")
    p.add_argument("--engine", choices=["piper", "espeak", "openai"], default=None,
                   help="default: VISPOD_VOICE_ENGINE, else piper")
    p.add_argument("--voice", action="append", default=[], metavar="SPEAKER=VOICE",
                   help="a speaker's voice (repeatable); others get the engine's voices in order")
    p.add_argument("--piper-model", type=Path, default=None, help="any Piper voice .onnx (its .onnx.json beside it)")
    p.add_argument("--list-voices", action="store_true", help="print the engine's voices and exit")
    p.set_defaults(func=_speak)


def _speak(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {"consume": False}
    if args.engine:
        overrides["engine"] = args.engine
    if args.piper_model:
        overrides["piper_model"] = args.piper_model
    settings = load_settings(VoiceSettings, **overrides)
    suffix = args.out.suffix.lower()
    if suffix not in OUT_SUFFIXES:
        print(f"error: --out must end in {', '.join(OUT_SUFFIXES)}", file=sys.stderr)
        return 2
    requested = dict(v.split("=", 1) for v in args.voice if "=" in v)
    try:
        engine = build_engine(settings)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.list_voices:
        print("\n".join(engine.voices()))
        return 0
    podcaster = Podcaster(engine, settings)
    try:
        plan = podcaster.plan(load_dialogue_file(args.dialogue), requested)
        with tempfile.TemporaryDirectory(prefix="vispod-speak-") as tmp:
            rendered = podcaster.render_to(plan, Path(tmp), title=args.dialogue.stem)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(rendered.wav if suffix == ".wav" else rendered.opus), args.out)
    except (DialogueError, EngineError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    rtf = rendered.synthesis_seconds / rendered.duration if rendered.duration else 0.0
    print(f"{args.out}: {rendered.duration:.1f} s, {len(plan.turns)} turns, {rendered.loudness_lufs:.1f} LUFS, "
          f"real-time factor {rtf:.2f}")
    for speaker, voice in plan.voices.items():
        print(f"  {speaker}: {voice} ({engine.name})")
    for _, title, start in rendered.chapters:
        print(f"  chapter {start:7.2f} s  {title}")
    return 0
