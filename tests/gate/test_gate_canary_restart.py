"""The gate's canary on the real broker, as its own process: SIGKILLed mid-canary it resumes from its saved progress
and decides on exactly the dialogues it was given (none lost, none counted twice); forged MetricsComputed events
claiming a regression change nothing (the gate scores live dialogues itself)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from gate_scripted import ScriptedGenerator, ScriptedJudge, ScriptedMetrics, Servers, dialogue_for

from vispod.common.bus import EventPublisher, EventReader, ensure_topics
from vispod.common.settings import KafkaSettings
from vispod.common.signing import generate_keypair
from vispod.common.topics import Topic
from vispod.v1 import common_pb2, events_pb2

S = events_pb2.AdapterState


def start_gate(kafka: KafkaSettings, gen: str, met: str, jud: str, root: Path) -> subprocess.Popen:
    env = {**os.environ, "VISPOD_KAFKA_BOOTSTRAP": kafka.bootstrap, "VISPOD_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "HOSTNAME": "gate-0",   # the same transactional id after the restart: the dead one's transaction is fenced
           "VISPOD_GATE_GENERATOR_ADDR": gen, "VISPOD_GATE_METRICS_ADDR": met, "VISPOD_GATE_JUDGE_ADDR": jud,
           "VISPOD_GATE_ARTIFACT_ROOT": str(root), "VISPOD_GATE_GRPC_PORT": "0", "VISPOD_GATE_METRICS_PORT": "0",
           "VISPOD_GATE_SIGNING_KEY_FILE": str(root / "keys" / "gate.key"), "VISPOD_GATE_CANARY_MIN_SAMPLES": "6",
           "VISPOD_GATE_CANARY_REFRESH_S": "0.2", "VISPOD_GATE_CANARY_TICK_S": "1", "VISPOD_GATE_LOG_LEVEL": "INFO"}
    log = open(root / "gate.log", "ab")  # noqa: SIM115 - the child writes it; kept for a failing test's reader
    return subprocess.Popen([sys.executable, "-m", "vispod.gate"], env=env, stdout=log, stderr=subprocess.STDOUT)


def live(adapter: str) -> events_pb2.DialogueGenerated:
    return events_pb2.DialogueGenerated(image_set_id=uuid.uuid4().hex, adapter_id=adapter,
                                        status=common_pb2.STATUS_OK, latency_seconds=2.0,
                                        dialogue=common_pb2.Dialogue(text=dialogue_for(adapter)))


def progress(reader: EventReader, want, timeout: float = 90.0) -> events_pb2.CanaryProgress:
    found = reader.read(1, timeout, where=lambda e: isinstance(e.message, events_pb2.CanaryProgress)
                        and want(e.message))
    assert found, "the expected canary progress never appeared"
    return found[0].message


def test_a_killed_gate_resumes_mid_canary_and_forged_metrics_decide_nothing(kafka: KafkaSettings, servers: Servers,
                                                                             tmp_path: Path) -> None:
    generate_keypair(tmp_path / "keys", "gate")
    gen = ScriptedGenerator()
    gen.register("pod@1", S.ADAPTER_STATE_ACTIVE)
    gen.register("pod@2", S.ADAPTER_STATE_CANARY)
    # The canary repeats itself less than the active adapter: a real improvement.
    addrs = (servers.serve(gen), servers.serve(ScriptedMetrics(repetition={"pod@2": 0.02, "pod@1": 0.10})),
             servers.serve(ScriptedJudge()))
    ensure_topics(kafka)
    bus = EventPublisher(kafka, "generator")
    reader = EventReader(kafka, [Topic.GATE_CANARY, Topic.ADAPTER_LIFECYCLE])
    gate = start_gate(kafka, *addrs, tmp_path)
    try:
        # No traffic yet: the tick starts the canary's clock and saves it.
        started = progress(reader, lambda p: p.canary_adapter_id == "pod@2" and p.canary.n == 0)
        # Someone with write access to the metrics topic claims the canary regressed badly.
        for adapter, rate in (("pod@2", 0.95), ("pod@1", 0.0)) * 30:
            bus.publish(Topic.METRICS_COMPUTED, events_pb2.MetricsComputed(
                image_set_id=uuid.uuid4().hex, adapter_id=adapter,
                style=common_pb2.StyleMetrics(repeated_4gram_rate=rate)))
        for _ in range(3):
            bus.publish(Topic.DIALOGUE_GENERATED, live("pod@1"))
            bus.publish(Topic.DIALOGUE_GENERATED, live("pod@2"))
        progress(reader, lambda p: p.canary.n == 3 and p.active.n == 3)
        gate.send_signal(signal.SIGKILL)   # mid-canary: three pairs counted, no decision
        gate.wait(30)
        for _ in range(3):
            bus.publish(Topic.DIALOGUE_GENERATED, live("pod@1"))
            bus.publish(Topic.DIALOGUE_GENERATED, live("pod@2"))
        gate = start_gate(kafka, *addrs, tmp_path)
        decided = progress(reader, lambda p: bool(p.decision))
        [command] = reader.read(1, 30, where=lambda e: isinstance(e.message, events_pb2.AdapterLifecycleChanged))
    finally:
        gate.send_signal(signal.SIGTERM)
        try:
            gate.wait(30)
        except subprocess.TimeoutExpired:
            gate.kill()
        bus.close()
        reader.close()
    # Exactly the six pairs it was given, across the kill; the clock kept its start.
    assert (decided.decision, decided.canary.n, decided.active.n) == ("promote", 6, 6)
    assert decided.started_at == started.started_at and dict(decided.pairs) == {"repetition": 6}
    cmd = command.message
    assert (cmd.adapter_id, cmd.state, cmd.actor) == ("pod@2", S.ADAPTER_STATE_ACTIVE, "gate") and cmd.signature
    assert cmd.evidence["canary_n"] == 6.0 and cmd.evidence["repetition_pairs"] == 6.0
    assert time.time() - started.started_at.ToSeconds() < 300
