"""The developer kit's commands: `vispod kafka`, `example`, `up`, `submit`, `demo`, `generate`, `mini-paper`,
`mini-paper-screen` and the evaluation harness's `eval` (vispod-evaluation has no entry point of its own: it comes
with the kit)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vispod.common.kafka_address import bootstrap_from
from vispod.devkit import demo, generate, local_kafka, mini_paper_loop, mini_paper_screen
from vispod.devkit.checkout import use_shared_datasets
from vispod.devkit.example_story import write_example_story
from vispod.devkit.local_adapter_store import STORES
from vispod.devkit.local_stack import run_stack
from vispod.devkit.submit import add_image_set_arguments, submit
from vispod.devkit.supervisor import RestartPolicy
from vispod.evaluation import cli as evaluation_cli


def register(sub: argparse._SubParsersAction) -> None:
    use_shared_datasets()  # before any command reads the datasets setting
    p = sub.add_parser("kafka", help="a local Kafka broker in the background (up|down|status|resolve)")
    p.add_argument("action", choices=["up", "down", "status", "resolve"])
    p.add_argument("--port", type=int)
    p.set_defaults(func=lambda a: local_kafka.main([a.action] + (["--port", str(a.port)] if a.port else [])))

    p = sub.add_parser("example", help="write an example photo story made from bundled real photos")
    p.add_argument("--out", type=Path, default=Path("out/example-story"))
    p.set_defaults(func=_example)

    p = sub.add_parser("up", help="run a local broker and every installed service until Ctrl-C")
    p.add_argument("--services", default=None, help="comma-separated (default: every installed service)")
    p.add_argument("--image-root", action="append", type=Path, default=[],
                   help="extra folder that file:// image URIs may point into")
    p.add_argument("--workdir", type=Path, default=Path("out/up"))
    p.add_argument("--ready-timeout", type=float, default=300.0)
    p.add_argument("--store", choices=STORES, default="files",
                   help="adapter store: unsigned local folders (files) or signed versions on a local S3 server (s3)")
    p.add_argument("--restart-backoff", type=float, default=1.0,
                   help="seconds before restarting a service that died (doubling while it keeps dying)")
    p.add_argument("--max-crashes", type=int, default=5,
                   help="exits of one service within 5 minutes after which the stack gives up and stops")
    p.set_defaults(func=_up)

    p = sub.add_parser("submit", help="publish an image set and print the events that follow")
    p.add_argument("folder", type=Path, help="a folder of images, or a story folder with story.json")
    add_image_set_arguments(p)
    p.add_argument("--bootstrap", default=None)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--json", action="store_true", help="print events as JSON lines")
    p.set_defaults(func=_submit)

    demo.register(sub)
    generate.register(sub)
    mini_paper_loop.register(sub)
    mini_paper_screen.register(sub)
    evaluation_cli.register(sub)


def _example(args: argparse.Namespace) -> int:
    path = write_example_story(args.out)
    print(f"example story: {path}")
    return 0


def _up(args: argparse.Namespace) -> int:
    services = args.services.split(",") if args.services else None
    policy = RestartPolicy(backoff_s=args.restart_backoff, max_crashes=args.max_crashes)
    return run_stack(services, args.image_root, args.workdir, args.ready_timeout, args.store, policy)


def _submit(args: argparse.Namespace) -> int:
    return submit(args, bootstrap_from(args.bootstrap))
