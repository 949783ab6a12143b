"""Replay protection on the real broker: a validly signed lifecycle command published again (later, as a copy,
or moved to another adapter) is refused and dead-lettered with the reason; a restarted pod replaying the
topic reaches the same state and refuses the same replays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapter_stack import pod_settings, publish_adapters, publish_commands, states, wait_until
from lifecycle_keys import identities

from vispod.common.bus import EventReader, ensure_topics
from vispod.common.topics import dlq_topic
from vispod.generator.service import build
from vispod.v1 import events_pb2

S = events_pb2


def _copy(cmd: events_pb2.AdapterLifecycleChanged, **changes) -> events_pb2.AdapterLifecycleChanged:
    out = events_pb2.AdapterLifecycleChanged()
    out.CopyFrom(cmd)
    for name, value in changes.items():
        setattr(out, name, value)
    return out


def test_replayed_stale_and_retargeted_commands_are_dead_lettered_and_stay_so_after_a_restart(
        tmp_path, kafka, engine, story_dir) -> None:
    ids = identities(tmp_path / "keys")
    ensure_topics(kafka)
    settings = pod_settings(tmp_path, story_dir, kafka, engine.url, tmp_path / "keys", lifecycle_max_age_s=600)
    publish_adapters(kafka, settings, tmp_path, "a@1", "c@1", "d@1")
    canary = ids.command("c@1", S.ADAPTER_STATE_CANARY, share=0.5)
    publish_commands(kafka, ids.command("a@1", S.ADAPTER_STATE_ACTIVE), canary)
    handle = build(settings).start()
    dlq = EventReader(kafka, [dlq_topic("generator", kafka.topic_prefix)])
    try:
        wait_until(lambda: states(handle).get("c@1", (0,))[0] == S.ADAPTER_STATE_CANARY, what="the canary")
        rollback = ids.command("c@1", S.ADAPTER_STATE_CANDIDATE, signer=ids.admin, reason="canary regressed")
        publish_commands(kafka, rollback)
        wait_until(lambda: states(handle)["c@1"][0] == S.ADAPTER_STATE_CANDIDATE, what="the rollback")

        old = ids.command("d@1", S.ADAPTER_STATE_ACTIVE, changed_at=_timestamp(datetime.now(UTC) - timedelta(hours=2)))
        replays = [
            canary,                           # the canary again, after its rollback: signed before the last one
            _copy(rollback),                  # the rollback itself, copied (another event id, same signature)
            old,                              # signed two hours before it reached the topic
            _copy(canary, adapter_id="d@1"),  # moved to another adapter: the signature covers the id
        ]
        publish_commands(kafka, *replays)
        publish_commands(kafka, ids.command("d@1", S.ADAPTER_STATE_CANARY, share=0.2))  # a fresh one: obeyed
        letters = [e.message for e in dlq.read(len(replays), timeout=120)]
        wait_until(lambda: states(handle)["d@1"][0] == S.ADAPTER_STATE_CANARY, what="the fresh command")
        first = states(handle)
    finally:
        handle.stop()
        dlq.close()
    assert first["c@1"][0] == S.ADAPTER_STATE_CANDIDATE and first["a@1"][0] == S.ADAPTER_STATE_ACTIVE
    assert [letter.error_kind for letter in letters] == ["permission_denied"] * len(replays)
    reasons = [letter.error for letter in letters]
    assert "replayed or out-of-order lifecycle command for c@1" in reasons[0] and "before the last one" in reasons[0]
    assert "replayed lifecycle command for c@1: this very command" in reasons[1]
    assert "stale lifecycle command for d@1" in reasons[2] and "a replay" in reasons[2]
    assert "does not match the content" in reasons[3]

    # A rescheduled pod (empty disk) replays the topic: the same state, the same replays refused again.
    dlq = EventReader(kafka, [dlq_topic("generator", kafka.topic_prefix)], from_beginning=False)
    again = pod_settings(tmp_path, story_dir, kafka, engine.url, tmp_path / "keys", name="generator-1",
                         lifecycle_max_age_s=600)
    handle = build(again).start()
    try:
        wait_until(lambda: states(handle).get("d@1", (0,))[0] == S.ADAPTER_STATE_CANARY, what="the replay")
        refused_again = [e.message.error for e in dlq.read(len(replays), timeout=120)]
        assert states(handle) == first
    finally:
        handle.stop()
        dlq.close()
    assert refused_again == reasons


def _timestamp(when: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromDatetime(when)
    return ts
