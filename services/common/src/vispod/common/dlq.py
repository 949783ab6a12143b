"""`vispod dlq replay SERVICE`: republish a service's dead letters to their original topics.

Each `DeadLetter` carries the original record (topic, key, headers, payload), so the replayed record is
the original event with its original id: a consumer that has since been fixed handles it (dead-lettered
ids are not remembered as handled), and one that already handled it drops the copy as a duplicate.
Progress is kept in a consumer group of its own per service and reason, so running the command again
republishes only letters that arrived since; `--from-beginning` replays everything again.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from vispod.common.kafka_address import bootstrap_from
from vispod.common.settings import KafkaSettings
from vispod.common.topics import dlq_topic
from vispod.v1 import events_pb2

KINDS = ("decode", "invalid", "failed")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dlq", help="dead-letter topics: replay dead letters to their original topics")
    dsub = p.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    r = dsub.add_parser("replay", help="republish SERVICE's dead letters to their original topics")
    r.add_argument("service", help="the service whose dead-letter topic to replay, e.g. judge")
    r.add_argument("--kind", choices=[*KINDS, "all"], default="failed",
                   help="which letters: failed (default: the dependency was down), invalid, decode, all")
    r.add_argument("--from-beginning", action="store_true", help="replay letters replayed before, too")
    r.add_argument("--dry-run", action="store_true", help="list what would be replayed; publish nothing")
    r.add_argument("--limit", type=int, default=0, help="at most this many letters (0: all)")
    r.add_argument("--bootstrap", default=None)
    r.add_argument("--topic-prefix", default=None)
    r.set_defaults(func=_replay_cmd)


def _replay_cmd(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {"bootstrap": bootstrap_from(args.bootstrap)}
    if args.topic_prefix:
        overrides["topic_prefix"] = args.topic_prefix
    kafka = KafkaSettings(**overrides)
    try:
        counts = replay(kafka, args.service, kinds=KINDS if args.kind == "all" else (args.kind,),
                        from_beginning=args.from_beginning, dry_run=args.dry_run, limit=args.limit)
    except LookupError as exc:
        print(f"vispod dlq replay: {exc}", file=sys.stderr)
        return 2
    verb = "would replay" if args.dry_run else "replayed"
    total = sum(counts.values())
    where = ", ".join(f"{topic} ({n})" for topic, n in sorted(counts.items()))
    print(f"{verb} {total} dead letter(s) of {args.service}" + (f" to {where}" if where else ""))
    return 0


def replay(kafka: KafkaSettings, service: str, *, kinds: tuple[str, ...] = ("failed",), from_beginning: bool = False,
           dry_run: bool = False, limit: int = 0) -> Counter[str]:
    """Republishes the letters of `kinds` present now; returns the count per original topic."""
    topic = dlq_topic(service, kafka.topic_prefix)
    consumer = KafkaConsumer(group_id=f"{kafka.topic_prefix}.dlq-replay.{service}.{'-'.join(sorted(kinds))}",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             isolation_level="read_committed", **kafka.client_config())
    producer = None
    counts: Counter[str] = Counter()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise LookupError(f"no dead-letter topic {topic} on {kafka.bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        batch: list[events_pb2.DeadLetter] = []
        done: dict[TopicPartition, int] = {}
        while any(consumer.position(tp) < end[tp] for tp in tps) and not (limit and len(batch) >= limit):
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for rec in records:
                    if rec.offset >= end[tp] or (limit and len(batch) >= limit):
                        break
                    done[tp] = rec.offset + 1
                    letter = events_pb2.DeadLetter.FromString(rec.value)
                    if letter.error_kind in kinds and letter.original_topic:
                        batch.append(letter)
        if dry_run:
            for letter in batch:
                print(f"  {letter.error_kind:8} {letter.original_topic} @{letter.partition}/{letter.offset}: "
                      f"{letter.error[:120]}")
                counts[letter.original_topic] += 1
            return counts
        if batch:
            producer = KafkaProducer(acks="all", **kafka.client_config())
            futures = [producer.send(letter.original_topic, value=letter.payload, key=letter.key or None,
                                     headers=[(h.key, h.value) for h in letter.headers]) for letter in batch]
            producer.flush()
            for f in futures:
                f.get(timeout=30)
            for letter in batch:
                counts[letter.original_topic] += 1
        # Committed only after every republished record is acknowledged: a crash replays again, never loses.
        if done:
            consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in done.items()})
        return counts
    finally:
        if producer is not None:
            producer.close(timeout=10)
        consumer.close(autocommit=False)
