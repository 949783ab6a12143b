"""The event bus: publishing, and the consumer runtime every service's event flow runs on.

Delivery: a batch of input events is handled, then its outputs (dead letters included) and the
input offsets are committed together — in one Kafka transaction by default (`exactly_once`: a crash
at any point neither loses an accepted event nor leaves a duplicate output for read_committed
readers), or flushed-then-committed (`at_least_once`). Output event ids derive from the input's,
so a redelivery re-creates identical events and readers can de-duplicate by id either way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata
from prometheus_client import Counter, Gauge, Histogram

from vispod.common import events
from vispod.common.errors import status_of
from vispod.common.events import Envelope, EventDecodeError
from vispod.common.lru import LRU
from vispod.common.settings import KafkaSettings
from vispod.common.topics import TOPIC_CONFIGS, Topic, all_topics, dlq_topic, topic_name
from vispod.v1 import events_pb2

log = logging.getLogger(__name__)

CONSUMED = Counter("vispod_bus_events_consumed_total", "Events taken from Kafka, by outcome",
                   ["service", "topic", "outcome"])
PUBLISHED = Counter("vispod_bus_events_published_total", "Events published", ["service", "topic"])
DEAD_LETTERS = Counter("vispod_bus_dead_letters_total", "Events sent to a dead-letter topic", ["service", "reason"])
LAG = Gauge("vispod_bus_consumer_lag", "Messages behind the partition end", ["service", "topic"])
HANDLE_SECONDS = Histogram("vispod_bus_handle_seconds", "Time to handle one event", ["service", "topic"],
                           buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300))
COMMIT_SECONDS = Histogram("vispod_bus_commit_seconds", "Time to commit one batch (outputs + offsets)", ["service"],
                           buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))


@dataclass(frozen=True)
class Output:
    """One event a handler wants published."""

    topic: Topic
    message: Message
    key: bytes | None = None   # default: the message's own key (events.event_key), else the input's


Handler = Callable[[Envelope], Iterable[Output]]


def _short_topic(full: str, prefix: str) -> str:
    """Metric label for a topic: without the (possibly per-test) prefix, so label values stay few."""
    return full[len(prefix) + 1:] if full.startswith(prefix + ".") else full


def ensure_topics(kafka: KafkaSettings, topics: Sequence[str] | None = None, partitions: int = 1) -> None:
    """Creates the given topics (default: every vispod topic under the prefix) if they do not exist, with their
    TOPIC_CONFIGS; an existing topic without them (e.g. auto-created, or made before they existed) is switched."""
    names = list(dict.fromkeys(topics if topics is not None else all_topics(kafka.topic_prefix)))
    wanted = {topic_name(t, kafka.topic_prefix): c for t, c in TOPIC_CONFIGS.items()}
    admin = KafkaAdminClient(**kafka.client_config(), client_id="vispod-admin")
    try:
        existing = set(admin.list_topics())
        for name in names:  # one by one: a topic another client just created must not fail the rest
            if name not in existing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics([NewTopic(name, partitions, 1, topic_configs=wanted.get(name, {}))])
                    continue
            if name in wanted:
                _align_topic_configs(admin, name, wanted[name])
    finally:
        admin.close()


def _align_topic_configs(admin: KafkaAdminClient, name: str, configs: dict[str, str]) -> None:
    """Sets the configs an existing topic lacks (incrementally: its other settings stay). Without the right to
    alter it, says so and goes on: the operator must set them."""
    resource = ConfigResource(ConfigResourceType.TOPIC, name, configs=dict.fromkeys(configs))
    try:
        current = admin.describe_configs([resource], config_filter="all")["topic"][name]
        differ = {k: v for k, v in configs.items() if (current.get(k) or {}).get("value") != v}
        if not differ:
            return
        result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=differ)])
        outcome = result.get("topic", {}).get(name)
        if outcome != "OK":
            raise KafkaError(str(outcome))
        log.warning("topic settings switched", extra={"topic": name, "configs": differ})
    except (KafkaError, KeyError, TypeError) as exc:
        log.error("topic lacks its settings and they could not be set: set them on the broker",
                  extra={"topic": name, "configs": configs, "error": str(exc)})


class EventPublisher:
    """Publishes events and waits for the broker's acknowledgement."""

    def __init__(self, kafka: KafkaSettings, source: str) -> None:
        self.kafka = kafka
        self.source = source
        self._producer = KafkaProducer(**kafka.client_config(), acks="all", enable_idempotence=True,
                                       linger_ms=1, client_id=f"vispod-{source}")

    def publish(self, topic: Topic | str, message: Message, event_id: str | None = None,
                content_type: str = events.PROTOBUF, timeout: float = 30.0, key: bytes | None = None) -> str:
        """Publishes one event; returns its id. `key` overrides the message's own key."""
        full = topic_name(topic, self.kafka.topic_prefix) if isinstance(topic, Topic) else topic
        value, headers, own_key = events.encode(message, f"vispod/{self.source}", event_id, content_type)
        self._producer.send(full, value=value, key=key or own_key, headers=headers).get(timeout=timeout)
        PUBLISHED.labels(self.source, _short_topic(full, self.kafka.topic_prefix)).inc()
        return dict(headers)["ce_id"].decode()

    def send_raw(self, topic: str, value: bytes | None, headers: list[tuple[str, bytes]] | None = None,
                 key: bytes | None = None) -> None:
        """Publishes arbitrary bytes (tests, tools publishing pre-encoded JSON events)."""
        self._producer.send(topic, value=value, key=key, headers=headers or []).get(timeout=30)

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()


class EventReader:
    """Reads committed events from topics without joining a group (tests, CLI, demo)."""

    def __init__(self, kafka: KafkaSettings, topics: Sequence[Topic | str], from_beginning: bool = True) -> None:
        self.kafka = kafka
        names = [topic_name(t, kafka.topic_prefix) if isinstance(t, Topic) else t for t in topics]
        ensure_topics(kafka, names)
        self._consumer = KafkaConsumer(**kafka.client_config(), enable_auto_commit=False,
                                       isolation_level="read_committed", group_id=None,
                                       fetch_max_wait_ms=kafka.fetch_max_wait_ms)
        parts = []
        for name in names:
            for _ in range(50):
                found = self._consumer.partitions_for_topic(name)
                if found:
                    break
                time.sleep(0.1)
            parts += [TopicPartition(name, p) for p in sorted(found or {0})]
        self._consumer.assign(parts)
        self._buffer: list[Envelope] = []
        if from_beginning:
            self._consumer.seek_to_beginning(*parts)
        else:
            self._consumer.seek_to_end(*parts)
            for tp in parts:
                self._consumer.position(tp)

    def records(self, timeout: float = 1.0) -> list[ConsumerRecord]:
        batch = self._consumer.poll(timeout_ms=int(timeout * 1000))
        return [r for recs in batch.values() for r in recs]

    def read(self, count: int, timeout: float = 30.0,
             where: Callable[[Envelope], bool] | None = None) -> list[Envelope]:
        """Returns up to `count` decodable events matching `where`, waiting at most `timeout` seconds.

        Matching events beyond `count` that one poll brought are kept for the next call, never dropped.
        """
        found: list[Envelope] = []
        keep: list[Envelope] = []
        for env in self._buffer:
            (found if len(found) < count and (where is None or where(env)) else keep).append(env)
        self._buffer = keep
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            for rec in self.records(min(0.5, max(0.01, deadline - time.monotonic()))):
                try:
                    env = decode_record(rec)
                except EventDecodeError:
                    continue
                if len(found) < count and (where is None or where(env)):
                    found.append(env)
                else:
                    self._buffer.append(env)
        return found

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> EventReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def decode_record(rec: ConsumerRecord, expected: type[Message] | None = None) -> Envelope:
    """events.decode, plus where the record sat: its partition and its Kafka timestamp."""
    return dataclasses.replace(events.decode(rec.value, rec.headers, expected, key=rec.key),
                               partition=rec.partition, timestamp_ms=rec.timestamp)


def read_events(kafka: KafkaSettings, topics: Sequence[Topic | str], count: int, timeout: float = 30.0,
                where: Callable[[Envelope], bool] | None = None) -> list[Envelope]:
    """Up to `count` events from the start of `topics` (EventReader.read), through a reader closed after."""
    with EventReader(kafka, topics) as reader:
        return reader.read(count, timeout, where)


class _SeenIds(LRU[str, None]):
    """Bounded memory of handled event ids (upstream duplicates, redelivery within a process).

    Only events handled successfully are remembered; dead-lettered ones are not, so `vispod dlq replay`
    (which republishes the original event, id included) is handled once the cause is fixed."""

    def __init__(self, capacity: int = 100_000) -> None:
        super().__init__(capacity)

    def add(self, event_id: str) -> None:
        self.put(event_id, None)


@dataclass
class _Pending:
    """A record to publish: topic, value, headers, key."""

    topic: str
    value: bytes
    headers: list[tuple[str, bytes]]
    key: bytes | None


class EventConsumer:
    """Consumes one or more topics with a handler; see the module docstring for delivery guarantees."""

    def __init__(self, *, service: str, topics: Sequence[Topic], expected: type[Message], handler: Handler,
                 kafka: KafkaSettings, group_id: str | None = None, concurrency: int = 1,
                 instance_id: str | None = None, max_batch: int | None = None,
                 retry_backoff_s: float = 0.2, periodic: Callable[[frozenset[int]], object] | None = None,
                 periodic_interval_s: float = 5.0, replay: bool = False) -> None:
        """`periodic(owned partitions)` runs every `periodic_interval_s` in the consuming thread, between
        batches: work on per-partition state (timeouts) there has one writer, whoever owns the partition.

        `replay`: the topics are a table every replica keeps (compacted state such as the adapter topics):
        no consumer group, every partition read from the beginning on each start, outputs flushed and no
        offsets committed (handlers must be idempotent). `caught_up` is set once the ends seen at start are read."""
        self.service = service
        self.kafka = kafka
        self.topics = [topic_name(t, kafka.topic_prefix) for t in topics]
        self.expected = expected
        self.handler = handler
        self.group_id = group_id or f"{kafka.topic_prefix}.{service}"
        self.concurrency = max(1, concurrency)
        # Events handled per poll and commit: slow handlers (model inference) want it near `concurrency`.
        self.max_batch = max_batch or kafka.max_poll_records
        self.instance_id = instance_id or os.environ.get("HOSTNAME") or socket.gethostname()
        self.retry_backoff_s = retry_backoff_s
        self.dlq = dlq_topic(service, kafka.topic_prefix)
        self._stop = threading.Event()
        self._running = threading.Event()
        self._last_poll = 0.0
        self._seen = _SeenIds()
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._source = f"vispod/{service}"
        self.periodic = periodic
        self.periodic_interval_s = periodic_interval_s
        self.replay = replay
        self.caught_up = threading.Event()
        self._replay_ends: dict[TopicPartition, int] = {}
        self.assigned: frozenset[int] = frozenset()  # partitions owned now (read from any thread)

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        """Running and polling (a stuck handler longer than the poll interval makes it unhealthy)."""
        limit = self.kafka.max_poll_interval_ms / 1000
        return self._running.is_set() and (time.monotonic() - self._last_poll) < limit

    def stop(self) -> None:
        """Stops polling; the batch in hand is finished and committed, then run() returns."""
        self._stop.set()

    def wait_running(self, timeout: float = 30.0) -> bool:
        return self._running.wait(timeout)

    def run(self) -> None:
        outputs = [topic_name(t, self.kafka.topic_prefix) for t in Topic]
        ensure_topics(self.kafka, [*self.topics, self.dlq, *outputs])
        transactional = self.kafka.delivery == "exactly_once" and not self.replay
        cfg = self.kafka.client_config()
        self._consumer = KafkaConsumer(
            *([] if self.replay else self.topics), **cfg, group_id=None if self.replay else self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
            max_poll_records=self.max_batch,
            max_poll_interval_ms=self.kafka.max_poll_interval_ms, session_timeout_ms=self.kafka.session_timeout_ms,
            client_id=f"vispod-{self.service}",
            fetch_max_wait_ms=self.kafka.fetch_max_wait_ms,
        )
        if self.replay:
            self._assign_from_beginning()
        else:
            self.caught_up.set()
        producer_cfg: dict[str, object] = {"acks": "all", "enable_idempotence": True, "linger_ms": 1,
                                           "client_id": f"vispod-{self.service}"}
        if transactional:
            # Stable per instance, so a restarted process fences its dead predecessor's open transaction.
            producer_cfg["transactional_id"] = f"{self.group_id}.{self.instance_id}"
        self._producer = KafkaProducer(**cfg, **producer_cfg)
        if transactional:
            self._producer.init_transactions()
        executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"{self.service}-handler") \
            if self.concurrency > 1 else None
        # Series exist from the start at zero, so increase() sees the very first dead letter.
        for reason in ("decode", "invalid", "failed"):
            DEAD_LETTERS.labels(self.service, reason)
        for full in self.topics:
            for outcome in ("ok", "dlq", "duplicate", "retry"):
                CONSUMED.labels(self.service, _short_topic(full, self.kafka.topic_prefix), outcome)
        self._running.set()
        last_lag_update = last_periodic = 0.0
        log.info("consumer started", extra={"topics": self.topics, "group": self.group_id,
                                            "delivery": self.kafka.delivery})
        try:
            while not self._stop.is_set():
                self._last_poll = time.monotonic()
                batch = self._consumer.poll(timeout_ms=200, max_records=self.max_batch)
                records = [r for recs in batch.values() for r in recs]
                if self._last_poll - last_lag_update > 1.0:
                    self._update_lag()
                    last_lag_update = self._last_poll
                if records:
                    self._process(records, executor, transactional)
                if not self.caught_up.is_set() and all(
                        self._consumer.position(tp) >= end for tp, end in self._replay_ends.items()):
                    self.caught_up.set()
                    log.info("replayed to the end", extra={"topics": self.topics})
                self.assigned = frozenset(tp.partition for tp in self._consumer.assignment())
                if self.periodic and time.monotonic() - last_periodic >= self.periodic_interval_s:
                    last_periodic = time.monotonic()
                    try:
                        self.periodic(self.assigned)
                    except Exception:
                        log.exception("periodic task failed; retrying next interval")
        finally:
            self._running.clear()
            if executor:
                executor.shutdown(wait=True)
            try:
                self._producer.flush(timeout=10)
                self._producer.close(timeout=10)
            finally:
                self._consumer.close(autocommit=False)
            log.info("consumer stopped", extra={"group": self.group_id})

    # --- one batch -------------------------------------------------------------------------
    def _process(self, records: list[ConsumerRecord], executor: ThreadPoolExecutor | None,
                 transactional: bool) -> None:
        if executor is None:
            results = [self._handle_record(r) for r in records]
        else:
            results = list(executor.map(self._handle_record, records))
        pending = [p for res in results for p in res[1]]
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for rec in records:
            offsets[TopicPartition(rec.topic, rec.partition)] = OffsetAndMetadata(rec.offset + 1, "", -1)
        started = time.monotonic()
        try:
            self._commit(pending, offsets, transactional)
        except KafkaError:
            log.exception("commit failed; the batch will be redelivered")
            for event_id, _ in results:
                if event_id:
                    self._seen.discard(event_id)
            self._rewind(records)
            if transactional:
                self._recover_transaction()
            return
        COMMIT_SECONDS.labels(self.service).observe(time.monotonic() - started)
        for p in pending:
            PUBLISHED.labels(self.service, _short_topic(p.topic, self.kafka.topic_prefix)).inc()

    def _commit(self, pending: list[_Pending], offsets: dict[TopicPartition, OffsetAndMetadata],
                transactional: bool) -> None:
        assert self._producer is not None and self._consumer is not None
        if transactional:
            self._producer.begin_transaction()
            for p in pending:
                self._producer.send(p.topic, value=p.value, key=p.key, headers=p.headers)
            self._producer.send_offsets_to_transaction(offsets, self._consumer.group_metadata())
            self._producer.commit_transaction()
        else:
            futures = [self._producer.send(p.topic, value=p.value, key=p.key, headers=p.headers) for p in pending]
            self._producer.flush()
            for f in futures:
                f.get(timeout=30)
            if not self.replay:
                self._consumer.commit(offsets)

    def _assign_from_beginning(self) -> None:
        assert self._consumer is not None
        parts = []
        for name in self.topics:
            for _ in range(100):
                found = self._consumer.partitions_for_topic(name)
                if found:
                    break
                time.sleep(0.1)
            parts += [TopicPartition(name, p) for p in sorted(found or ())]
        self._consumer.assign(parts)
        self._consumer.seek_to_beginning(*parts)
        self._replay_ends = dict(self._consumer.end_offsets(parts)) if parts else {}

    def _recover_transaction(self) -> None:
        assert self._producer is not None
        try:
            self._producer.abort_transaction()
        except KafkaError:
            log.exception("abort failed; stopping so a restart can fence and recover")
            self._stop.set()

    def _rewind(self, records: list[ConsumerRecord]) -> None:
        assert self._consumer is not None
        first: dict[TopicPartition, int] = {}
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            first[tp] = min(first.get(tp, rec.offset), rec.offset)
        for tp, offset in first.items():
            self._consumer.seek(tp, offset)

    def _handle_record(self, rec: ConsumerRecord) -> tuple[str | None, list[_Pending]]:
        """Returns (event id, records to publish) for one input record; never raises."""
        short = _short_topic(rec.topic, self.kafka.topic_prefix)
        try:
            env = decode_record(rec, self.expected)
        except EventDecodeError as exc:
            CONSUMED.labels(self.service, short, "dlq").inc()
            return None, [self._dead_letter(rec, str(exc), "decode", 1)]
        if env.id in self._seen:
            CONSUMED.labels(self.service, short, "duplicate").inc()
            return env.id, []
        attempts = 0
        while True:
            attempts += 1
            started = time.monotonic()
            try:
                outputs = list(self.handler(env))
            except Exception as exc:
                # The one place a vispod error status becomes a dead-letter reason: a permanent one at once.
                status = status_of(exc)
                if status.permanent:
                    CONSUMED.labels(self.service, short, "dlq").inc()
                    # Not remembered as handled: a replay from the dead-letter topic must be handled again.
                    return env.id, [self._dead_letter(rec, str(exc), status.reason, attempts)]
                if attempts >= self.kafka.max_attempts:
                    log.exception("event failed %d times; dead-lettering", attempts, extra={"event_id": env.id})
                    CONSUMED.labels(self.service, short, "dlq").inc()
                    return env.id, [self._dead_letter(rec, f"{type(exc).__name__}: {exc}", "failed", attempts)]
                CONSUMED.labels(self.service, short, "retry").inc()
                time.sleep(self.retry_backoff_s * 2 ** (attempts - 1))
                continue
            finally:
                HANDLE_SECONDS.labels(self.service, short).observe(time.monotonic() - started)
            break
        CONSUMED.labels(self.service, short, "ok").inc()
        self._seen.add(env.id)
        pending = []
        for i, out in enumerate(outputs):
            value, headers, key = events.encode(out.message, self._source,
                                                events.derived_id(env.id, i, self.service))
            pending.append(_Pending(topic_name(out.topic, self.kafka.topic_prefix), value, headers,
                                    out.key or key or rec.key))
        return env.id, pending

    def _dead_letter(self, rec: ConsumerRecord, error: str, kind: str, attempts: int) -> _Pending:
        DEAD_LETTERS.labels(self.service, kind).inc()
        log.warning("dead letter", extra={"topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
                                          "error": error[:500], "error_kind": kind})
        when = Timestamp()
        when.GetCurrentTime()
        letter = events_pb2.DeadLetter(
            original_topic=rec.topic, partition=rec.partition, offset=rec.offset, key=rec.key or b"",
            headers=[events_pb2.KafkaHeader(key=k, value=v or b"") for k, v in rec.headers or []],
            payload=rec.value or b"", error=error, service=self.service, time=when, error_kind=kind,
            attempts=attempts,
        )
        coordinates = f"{rec.topic}/{rec.partition}/{rec.offset}"
        value, headers, _ = events.encode(letter, self._source, events.derived_id(coordinates, 0, "dlq"))
        return _Pending(self.dlq, value, headers, rec.key)

    def _update_lag(self) -> None:
        assert self._consumer is not None
        per_topic: dict[str, int] = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            try:
                pos = self._consumer.position(tp, timeout_ms=100)
            except KafkaError:
                pos = None
            if pos is not None:
                per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(0, high - pos)
        for full, lag in per_topic.items():
            LAG.labels(self.service, _short_topic(full, self.kafka.topic_prefix)).set(lag)
