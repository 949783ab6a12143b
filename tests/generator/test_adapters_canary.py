"""Canary and authorised lifecycle on the real broker, with the generator service and the gate's canary monitor:
the measured canary share, stickiness, rollback of a canary the gate measures as worse, promotion of a better one, and
unsigned / wrongly signed / self-declared commands dead-lettered while the consumer goes on."""

from __future__ import annotations

import threading
import time

import pytest
from adapter_stack import listing, pod_settings, publish_adapters, publish_commands, states, wait_until
from gen_helpers import make_event
from lifecycle_keys import identities
from prometheus_client import REGISTRY

from vispod.common.bus import EventPublisher, EventReader, ensure_topics
from vispod.common.topics import dlq_topic
from vispod.devkit.testing.canary_probe import measure_canary_share, serve_scores, traffic_until_decided
from vispod.gate.clients import Clients
from vispod.gate.service import canary_consumers, canary_monitor
from vispod.gate.settings import GateSettings
from vispod.generator.service import build
from vispod.v1 import events_pb2

S = events_pb2
SHARE = 0.10


@pytest.fixture
def pod(tmp_path, kafka, engine, story_dir):
    """A generator pod with a@1 active and c@1 on a 10 % canary, both decided by signed gate commands."""
    ids = identities(tmp_path / "keys")   # keys/gate.key, admin.key and the .pub files the pod trusts
    ensure_topics(kafka)
    settings = pod_settings(tmp_path, story_dir, kafka, engine.url, tmp_path / "keys")
    publish_adapters(kafka, settings, tmp_path, "a@1", "c@1", "d@1")
    publish_commands(kafka, ids.command("a@1", S.ADAPTER_STATE_ACTIVE),
                     ids.command("c@1", S.ADAPTER_STATE_CANARY, share=SHARE))
    handle = build(settings).start()
    try:
        wait_until(lambda: states(handle).get("c@1", (0,))[0] == S.ADAPTER_STATE_CANARY, what="the canary")
        yield {"handle": handle, "ids": ids, "addr": f"127.0.0.1:{handle.grpc_port}"}
    finally:
        handle.stop()


def test_canary_share_within_five_points_over_200_image_sets_and_sticky(pod, kafka, story_dir):
    events = [make_event(story_dir, n=1, set_id=f"story-{i:04d}") for i in range(200)]
    measured = measure_canary_share(kafka, events, "c@1", resubmit=50)
    print(f"canary share measured: {100 * measured.share:.1f}% of {measured.n} image sets (configured "
          f"{100 * SHARE:.0f}%)")
    assert measured.n == 200 and abs(measured.share - SHARE) <= 0.05
    assert measured.sticky
    assert set(measured.by_set.values()) == {"a@1", "c@1"}


def test_the_gate_rolls_a_regressing_canary_back_and_promotes_a_clean_one(pod, kafka, tmp_path, story_dir):
    """Live traffic through the generator; the gate scores the dialogues itself (a metrics service whose numbers
    depend on the adapter) and decides by its sign test: c@1 repeats itself more than a@1 (rolled back), d@1
    less (promoted)."""
    handle, addr, ids = pod["handle"], pod["addr"], pod["ids"]
    scores, server = serve_scores({"a@1": 0.05, "c@1": 0.30, "d@1": 0.01})
    s = GateSettings(kafka=kafka, artifact_root=tmp_path / "gate", generator_addr=addr, metrics_addr=scores,
                     metrics_port=0, canary_min_samples=5, canary_refresh_s=0.2, canary_tick_s=1)
    clients = Clients(generator_addr=addr, metrics_addr=scores)
    publisher = EventPublisher(kafka, "gate")
    consumers = canary_consumers(s, canary_monitor(s, clients, ids.gate, publisher))
    threads = [threading.Thread(target=c.run, daemon=True) for c in consumers]
    for t in threads:
        t.start()
    steps = REGISTRY.get_sample_value("vispod_gate_canary_steps_total", {"step": "rollback"}) or 0.0
    events = [make_event(story_dir, n=1, set_id=f"live-{i:04d}") for i in range(600)]
    try:
        assert all(c.wait_running(30) for c in consumers)
        outcome = traffic_until_decided(kafka, addr, "c@1", events[:400])
        print(f"rollback of a canary that repeats itself more: {outcome}")
        assert outcome.rolled_back and outcome.state == "CANDIDATE" and outcome.active == "a@1"
        assert REGISTRY.get_sample_value("vispod_gate_canary_steps_total", {"step": "rollback"}) == steps + 1

        # A new canary that holds up: promoted once its sign test says "no worse", the old active retired.
        publish_commands(kafka, ids.command("d@1", S.ADAPTER_STATE_CANARY, share=0.3))
        wait_until(lambda: states(handle).get("d@1", (0,))[0] == S.ADAPTER_STATE_CANARY, what="the new canary")
        time.sleep(0.5)   # the monitor's view of the routing refreshes every 0.2 s
        traffic_until_decided(kafka, addr, "d@1", events[400:])
        wait_until(lambda: listing(handle).active_adapter_id == "d@1", what="the promotion")
        assert states(handle)["a@1"][0] == S.ADAPTER_STATE_RETIRED
    finally:
        for c in consumers:
            c.stop()
        for t in threads:
            t.join(30)
        publisher.close()
        clients.close()
        server.stop(0)


def test_only_commands_signed_by_the_gate_or_an_admin_are_obeyed(pod, kafka):
    ids, handle = pod["ids"], pod["handle"]
    forged = [
        ("unsigned", events_pb2.AdapterLifecycleChanged(adapter_id="d@1", state=S.ADAPTER_STATE_ACTIVE, actor="gate",
                                                        reason="trust me")),
        ("untrusted key", ids.command("d@1", S.ADAPTER_STATE_ACTIVE, signer=ids.stranger)),
        ("actor differs", _signed_as(events_pb2.AdapterLifecycleChanged(
            adapter_id="d@1", state=S.ADAPTER_STATE_ACTIVE, actor="gate", reason="admin key, gate's name"), ids.admin)),
        ("changed after signing", _relabel(ids.command("d@1", S.ADAPTER_STATE_ACTIVE, signer=ids.admin), "gate")),
        ("tampered", _retarget(ids.command("c@1", S.ADAPTER_STATE_CANARY, share=0.2), "d@1")),
    ]
    dlq = EventReader(kafka, [dlq_topic("generator", kafka.topic_prefix)], from_beginning=False)
    try:
        publish_commands(kafka, *[cmd for _, cmd in forged])
        publish_commands(kafka, ids.command("d@1", S.ADAPTER_STATE_CANARY, signer=ids.admin, share=0.5))
        letters = [e.message for e in dlq.read(len(forged), timeout=60)]
    finally:
        dlq.close()
    # The consumer went on: the admin's signed command after the forged ones is applied.
    wait_until(lambda: states(handle).get("d@1", (0,))[0] == S.ADAPTER_STATE_CANARY, what="the admin command")
    assert listing(handle).active_adapter_id == "a@1"
    assert len(letters) == len(forged) and all(letter.error_kind == "permission_denied" for letter in letters)
    reasons = [letter.error for letter in letters]
    assert "unsigned lifecycle command" in reasons[0] and "self-declared" in reasons[0]
    assert "untrusted key" in reasons[1]
    assert "signed by 'admin' but claims actor 'gate'" in reasons[2]
    assert "does not match the content" in reasons[3] and "does not match the content" in reasons[4]


def _signed_as(cmd, signer):
    """A signature over the command as it stands, whatever actor it names (sign_command would set the actor)."""
    from vispod.common.lifecycle_signing import command_document

    cmd.signature.update(signer.signature_block(command_document(cmd)))
    return cmd


def _relabel(cmd, actor: str):
    cmd.actor = actor
    return cmd


def _retarget(cmd, adapter_id: str):
    cmd.adapter_id = adapter_id
    return cmd


def test_vispod_adapters_shows_the_state_and_sends_signed_admin_commands(pod, kafka, tmp_path, capsys, monkeypatch):
    from vispod.common.cli import main

    monkeypatch.setenv("VISPOD_KAFKA_TOPIC_PREFIX", kafka.topic_prefix)
    assert main(["adapters", "--generator", pod["addr"]]) == 0
    shown = capsys.readouterr().out
    assert "c@1" in shown and "10% (canary)" in shown and "90% (default)" in shown
    assert "active: a@1; canary: c@1 at 10%, sticky per image set" in shown

    admin_key = str(tmp_path / "keys" / "admin.key")
    assert main(["adapters", "promote", "c@1", "--generator", pod["addr"], "--key", admin_key,
                 "--bootstrap", kafka.bootstrap, "--reason", "looks good"]) == 0
    assert "sent promote c@1 -> ACTIVE (signed by admin" in capsys.readouterr().out
    wait_until(lambda: listing(pod["handle"]).active_adapter_id == "c@1", what="the admin promotion")
    assert states(pod["handle"])["a@1"][0] == S.ADAPTER_STATE_RETIRED
    with pytest.raises(SystemExit, match="key"):
        main(["adapters", "rollback", "--generator", pod["addr"]])
