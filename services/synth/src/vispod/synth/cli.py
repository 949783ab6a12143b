"""`vispod synth …` commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from vispod.synth.tiny import build_tiny_sd_pipeline


def register(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser("synth", help="the text-to-image service and its tiny test pipeline")
    ssub = synth.add_subparsers(dest="synth_command", metavar="ACTION", required=True)
    p = ssub.add_parser("serve", help="run the synth service (same as python -m vispod.synth)")
    p.set_defaults(func=_serve)
    p = ssub.add_parser("tiny", help="build the tiny random Stable Diffusion pipeline (offline, ~1 s)")
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_tiny)


def _serve(_args: argparse.Namespace) -> int:
    # deferred: `vispod` registers every command at each start; the service pulls ~190 modules (Kafka, gRPC)
    from vispod.synth.service import main

    main()
    return 0


def _tiny(args: argparse.Namespace) -> int:
    print(build_tiny_sd_pipeline(args.out, seed=args.seed))
    return 0
