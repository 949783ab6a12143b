"""The one place topic names are made."""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    IMAGESET_SUBMITTED = "imageset.submitted"
    DIALOGUE_GENERATED = "dialogue.generated"
    METRICS_COMPUTED = "metrics.computed"
    JUDGEMENT_COMPLETED = "judgement.completed"
    ADAPTER_PUBLISHED = "adapter.published"
    ADAPTER_LIFECYCLE = "adapter.lifecycle"
    SYNTHESIS_REQUESTED = "synthesis.requested"
    SYNTHESIS_COMPLETED = "synthesis.completed"
    PODCAST_RENDERED = "podcast.rendered"
    GATE_CANARY = "gate.canary"


# State topics: compacted (the latest record per key is kept for ever), read whole by every replica at start.
# Keys: the adapter id for published versions, for signed lifecycle commands and for the gate's canary progress.
# Lifecycle records carry the broker's append time, which no producer chooses: generators refuse a command replayed
# long after it was signed.
TOPIC_CONFIGS: dict[Topic, dict[str, str]] = {
    Topic.ADAPTER_PUBLISHED: {"cleanup.policy": "compact"},
    Topic.ADAPTER_LIFECYCLE: {"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime"},
    Topic.GATE_CANARY: {"cleanup.policy": "compact"},
}
COMPACTED = frozenset(t for t, c in TOPIC_CONFIGS.items() if c.get("cleanup.policy") == "compact")

SERVICES = ("synth", "generator", "judge", "metrics", "trainer", "gate", "voice")


def topic_name(topic: Topic | str, prefix: str = "vispod") -> str:
    """`<prefix>.<topic>`, e.g. vispod.dialogue.generated."""
    return f"{prefix}.{Topic(topic).value}"


def dlq_topic(service: str, prefix: str = "vispod") -> str:
    """The dead-letter topic of a consuming service, e.g. vispod.dlq.generator."""
    if not service or not service.replace("-", "").isalnum():
        raise ValueError(f"bad service name for a DLQ topic: {service!r}")
    return f"{prefix}.dlq.{service}"


def all_topics(prefix: str = "vispod") -> list[str]:
    return [topic_name(t, prefix) for t in Topic] + [dlq_topic(s, prefix) for s in SERVICES]
