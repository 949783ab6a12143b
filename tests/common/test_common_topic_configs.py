"""Topic settings on the real broker: the adapter state topics are compacted and the lifecycle topic carries the
broker's append time, whether ensure_topics creates them or finds them made without (auto-created, or made by an
older release); their other settings stay."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from vispod.common import events
from vispod.common.bus import EventReader, ensure_topics
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic, topic_name
from vispod.v1 import events_pb2

KEYS = ("cleanup.policy", "message.timestamp.type", "retention.ms")


def _configs(admin: KafkaAdminClient, name: str) -> dict[str, str]:
    resource = ConfigResource(ConfigResourceType.TOPIC, name, configs=dict.fromkeys(KEYS))
    found = admin.describe_configs([resource], config_filter="all")["topic"][name]
    return {k: found[k]["value"] for k in KEYS}


def test_existing_adapter_topics_without_their_settings_are_switched_at_start(kafka: KafkaSettings) -> None:
    published, lifecycle = (topic_name(t, kafka.topic_prefix) for t in (Topic.ADAPTER_PUBLISHED,
                                                                         Topic.ADAPTER_LIFECYCLE))
    admin = KafkaAdminClient(**kafka.client_config(), client_id="test-admin")
    try:
        # As an auto-created or older topic: delete policy, producer time, and an operator's retention.
        admin.create_topics([NewTopic(published, 1, 1), NewTopic(lifecycle, 1, 1, topic_configs={
            "retention.ms": "86400000"})])
        assert _configs(admin, lifecycle)["cleanup.policy"] == "delete"
        ensure_topics(kafka)
        assert _configs(admin, published)["cleanup.policy"] == "compact"
        assert _configs(admin, lifecycle) == {"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime",
                                              "retention.ms": "86400000"}
        other = topic_name(Topic.DIALOGUE_GENERATED, kafka.topic_prefix)
        assert _configs(admin, other)["cleanup.policy"] == "delete"   # other topics keep the defaults
    finally:
        admin.close()

    # The lifecycle record's time is the broker's, whatever the producer claims.
    before = time.time() * 1000
    value, headers, key = events.encode(events_pb2.AdapterLifecycleChanged(adapter_id="a@1"), "vispod/test")
    producer = KafkaProducer(**kafka.client_config())
    try:
        producer.send(lifecycle, value=value, headers=headers, key=key, timestamp_ms=1_000_000_000_000).get(30)
    finally:
        producer.close()
    with EventReader(kafka, [Topic.ADAPTER_LIFECYCLE]) as reader:
        (env,) = reader.read(1, timeout=30)
    assert env.timestamp_ms >= before - 1000, "a producer's own (2001) timestamp was kept"
