"""The shared runtime's commands: `vispod kafka`, `topics`, `example`, `up`, `submit`, `demo`, `dlq`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from vispod.common import local_kafka
from vispod.common.submit import add_image_set_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kafka", help="a local Kafka broker in the background (up|down|status|resolve)")
    p.add_argument("action", choices=["up", "down", "status", "resolve"])
    p.add_argument("--port", type=int)
    p.set_defaults(func=lambda a: local_kafka.main([a.action] + (["--port", str(a.port)] if a.port else [])))

    p = sub.add_parser("topics", help="create every vispod topic on the broker")
    p.add_argument("--bootstrap", default=None)
    p.add_argument("--partitions", type=int, default=1)
    p.set_defaults(func=_topics)

    p = sub.add_parser("example", help="write an example photo story made from bundled real photos")
    p.add_argument("--out", type=Path, default=Path("out/example-story"))
    p.set_defaults(func=_example)

    p = sub.add_parser("up", help="run a local broker and every installed service until Ctrl-C")
    p.add_argument("--services", default=None, help="comma-separated (default: every installed service)")
    p.add_argument("--image-root", action="append", type=Path, default=[],
                   help="extra folder that file:// image URIs may point into")
    p.add_argument("--workdir", type=Path, default=Path("out/up"))
    p.add_argument("--ready-timeout", type=float, default=300.0)
    p.set_defaults(func=_up)

    p = sub.add_parser("submit", help="publish an image set and print the events that follow")
    p.add_argument("folder", type=Path, help="a folder of images, or a story folder with story.json")
    add_image_set_arguments(p)
    p.add_argument("--bootstrap", default=None)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--json", action="store_true", help="print events as JSON lines")
    p.set_defaults(func=_submit)


    from vispod.common.demo import register as register_demo
    from vispod.common.dlq import register as register_dlq

    register_demo(sub)
    register_dlq(sub)


def bootstrap_from(arg: str | None) -> str:
    """--bootstrap, else VISPOD_KAFKA_BOOTSTRAP, else the broker `vispod up` / `vispod kafka up` started."""
    if arg:
        return arg
    if os.environ.get("VISPOD_KAFKA_BOOTSTRAP"):
        return os.environ["VISPOD_KAFKA_BOOTSTRAP"]
    for state in (local_kafka.CACHE / "up.json", local_kafka.STATE_FILE):
        if state.exists():
            return str(json.loads(state.read_text())["bootstrap"])
    raise SystemExit("no broker: pass --bootstrap, set VISPOD_KAFKA_BOOTSTRAP, or run `vispod up`")


def _topics(args: argparse.Namespace) -> int:
    from vispod.common.bus import ensure_topics
    from vispod.common.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap=bootstrap_from(args.bootstrap))
    ensure_topics(kafka, partitions=args.partitions)
    print("topics ready")
    return 0


def _example(args: argparse.Namespace) -> int:
    from vispod.common.example_story import write_example_story

    path = write_example_story(args.out)
    print(f"example story: {path}")
    return 0


def _up(args: argparse.Namespace) -> int:
    from vispod.common.local_stack import run_stack

    services = args.services.split(",") if args.services else None
    return run_stack(services, args.image_root, args.workdir, args.ready_timeout)


def _submit(args: argparse.Namespace) -> int:
    from vispod.common.submit import submit

    return submit(args, bootstrap_from(args.bootstrap))
