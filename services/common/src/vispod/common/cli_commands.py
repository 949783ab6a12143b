"""The runtime's own commands, usable inside any image: `vispod topics` and `vispod dlq`."""

from __future__ import annotations

import argparse

from vispod.common.bus import ensure_topics
from vispod.common.dlq import register as register_dlq
from vispod.common.kafka_address import bootstrap_from
from vispod.common.settings import KafkaSettings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("topics", help="create every vispod topic on the broker")
    p.add_argument("--bootstrap", default=None)
    p.add_argument("--partitions", type=int, default=1)
    p.set_defaults(func=_topics)
    register_dlq(sub)


def _topics(args: argparse.Namespace) -> int:
    kafka = KafkaSettings(bootstrap=bootstrap_from(args.bootstrap))
    ensure_topics(kafka, partitions=args.partitions)
    print("topics ready")
    return 0
