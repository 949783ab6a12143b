"""The full loop on the real broker with the real services: an adapter is published → the generator verifies and
registers it → the gate generates with it and with the serving adapter (GeneratorService), scores both
(MetricsService, tiny random CLIP), judges both (JudgeService) → its lifecycle event alone (UpdateAdapter off)
makes the generator serve the winner, and leaves a loser a candidate while the active adapter serves on.

The model engines behind the generator's `openai` backend and the judge's `vllm` backend are one local HTTP
server speaking the OpenAI API (gate_engine.py): a tiny random VLM writes no labelled dialogue, so it cannot win
a judgement; the tiny-VLM path is covered by test_gate_tiny_vlm.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from gate_engine import EngineServer

from vispod.common.bus import EventPublisher, EventReader
from vispod.common.settings import ImageAccessSettings, KafkaSettings
from vispod.common.signing import generate_keypair
from vispod.common.topics import Topic
from vispod.devkit.testing import adapter_files as adapter_testing
from vispod.gate.evalset import write_builtin_set
from vispod.gate.service import build as build_gate
from vispod.gate.settings import GateSettings
from vispod.generator import service as generator_service
from vispod.generator.settings import GeneratorSettings
from vispod.judge import service as judge_service
from vispod.judge.settings import JudgeSettings
from vispod.metrics import service as metrics_service
from vispod.metrics.settings import MetricsSettings
from vispod.v1 import common_pb2, events_pb2, generator_pb2, generator_pb2_grpc

S = events_pb2.AdapterState
pytestmark = pytest.mark.slow  # minutes on 2 cores; still part of CI
BASE = "tiny-base"


@pytest.fixture
def engine() -> Iterator[EngineServer]:
    server = EngineServer()
    yield server
    server.stop()


@pytest.fixture
def stack(tmp_path: Path, kafka: KafkaSettings, engine: EngineServer, tiny_clip: str) -> Iterator[dict]:
    eval_set = write_builtin_set(tmp_path / "evalset", stories=6)  # 6 of 6 wins: Wilson lower bound 0.61
    images = ImageAccessSettings(file_roots=[eval_set], max_images=32)
    gate_key, _ = generate_keypair(tmp_path / "keys", "gate")  # generators obey only commands the gate signs
    common = dict(grpc_port=0, metrics_port=0, shutdown_drain_s=0, shutdown_grace_s=1, images=images)
    gen = generator_service.build(GeneratorSettings(
        backend="openai", openai_url=engine.engine.url, openai_model="base", base_model_id=BASE, kafka=kafka,
        adapter_state_dir=tmp_path / "gen-state", adapter_cache_dir=tmp_path / "gen-cache", instance_id="gen-0",
        backoff_base_s=0.01, artifact_root=tmp_path / "store", lifecycle_keys_dir=tmp_path / "keys",
        **common)).start()
    met = metrics_service.build(MetricsSettings(consume=False, clip_model=tiny_clip, clip_random_init=True,
                                                **common)).start()
    jud = judge_service.build(JudgeSettings(
        consume=False, judges=["vllm:judge"], vllm_base_url=f"{engine.engine.url}/v1", state_dir=tmp_path / "judge",
        **common)).start()
    gate_settings = GateSettings(
        kafka=kafka, artifact_root=tmp_path / "gate", eval_set=eval_set, generator_addr=f"127.0.0.1:{gen.grpc_port}",
        metrics_addr=f"127.0.0.1:{met.grpc_port}", judge_addr=f"127.0.0.1:{jud.grpc_port}", metrics_port=0,
        apply_via_grpc=False, candidate_wait_s=60, poll_interval_s=0.1, rpc_timeout_s=60, evaluation_timeout_s=300,
        shutdown_drain_s=0, signing_key_file=gate_key, canary_share=0)  # canary: tests/generator/*canary*
    gate = build_gate(gate_settings).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{gen.grpc_port}")
    try:
        yield {"generator": generator_pb2_grpc.GeneratorServiceStub(channel), "eval_set": eval_set,
               "gate_settings": gate_settings}
    finally:
        channel.close()
        gate.stop()
        jud.stop()
        met.stop()
        gen.stop()


def publish_adapter(kafka: KafkaSettings, tmp_path: Path, adapter_id: str, seed: int) -> None:
    folder = adapter_testing.make_fake_adapter_files(tmp_path / "store" / adapter_id.replace("@", "-"), BASE,
                                                     seed=seed)
    pub = EventPublisher(kafka, "trainer")
    try:
        pub.publish(Topic.ADAPTER_PUBLISHED, adapter_testing.published_event(folder, adapter_id, BASE))
    finally:
        pub.close()


def gate_decision(reader: EventReader, adapter_id: str) -> events_pb2.AdapterLifecycleChanged:
    found = reader.read(1, timeout=180,
                        where=lambda e: e.message.actor == "gate" and e.message.adapter_id == adapter_id)
    assert found, f"no gate decision for {adapter_id}"
    return found[0].message


def default_request(eval_set: Path) -> generator_pb2.GenerateRequest:
    story = sorted(eval_set.iterdir())[0]
    images = [common_pb2.ImageRef(uri=(story / f"image_{i}.png").resolve().as_uri()) for i in range(1, 6)]
    return generator_pb2.GenerateRequest(image_set=events_pb2.ImageSetSubmitted(
        image_set_id="live", images=images, speakers=[common_pb2.Speaker(name="Speaker 1"),
                                                       common_pb2.Speaker(name="Speaker 2")]))


def states(stub: generator_pb2_grpc.GeneratorServiceStub) -> dict[str, int]:
    return {a.adapter_id: a.state for a in stub.ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=10).adapters}


def wait_state(stub: generator_pb2_grpc.GeneratorServiceStub, adapter_id: str, state: int,
               timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while states(stub).get(adapter_id) != state:
        assert time.monotonic() < deadline, f"{adapter_id} never reached {S.Name(state)}: {states(stub)}"
        time.sleep(0.2)


def test_publish_gate_and_the_generator_serves_or_refuses(stack: dict, engine: EngineServer, kafka: KafkaSettings,
                                                          tmp_path: Path) -> None:
    stub = stack["generator"]
    reader = EventReader(kafka, [Topic.ADAPTER_LIFECYCLE])
    try:
        # 1. pod@1 beats the base model on naturalness in every story, both orders: promoted.
        engine.engine.preferred = "pod@1"
        publish_adapter(kafka, tmp_path, "pod@1", seed=1)
        first = gate_decision(reader, "pod@1")
        assert first.state == S.ADAPTER_STATE_ACTIVE, first.reason
        assert first.evidence["n"] == 6 and first.evidence["win_rate_lower"] > 0.5
        assert "grounding_delta" in first.evidence
        wait_state(stub, "pod@1", S.ADAPTER_STATE_ACTIVE)  # applied from the event alone (UpdateAdapter off)
        served = stub.Generate(default_request(stack["eval_set"]), timeout=60).result
        assert served.status == common_pb2.STATUS_OK and served.adapter_id == "pod@1"

        # 2. pod@2 loses to the serving pod@1: it stays a candidate, and pod@1 serves without a gap meanwhile.
        stop, failures, served_by = threading.Event(), [], []

        def live_traffic() -> None:
            while not stop.is_set():
                try:
                    r = stub.Generate(default_request(stack["eval_set"]), timeout=60).result
                    served_by.append(r.adapter_id if r.status == common_pb2.STATUS_OK else f"FAILED {r.error}")
                except grpc.RpcError as exc:
                    failures.append(exc.code().name)

        traffic = threading.Thread(target=live_traffic)
        traffic.start()
        try:
            publish_adapter(kafka, tmp_path, "pod@2", seed=2)
            second = gate_decision(reader, "pod@2")
        finally:
            stop.set()
            traffic.join(60)
    finally:
        reader.close()
    assert second.state == S.ADAPTER_STATE_CANDIDATE and "lower bound not above 0.5" in second.reason
    assert second.evidence["win_rate"] == 0.0 and second.evidence["n"] == 6
    assert not failures and served_by and set(served_by) == {"pod@1"}
    listing = stub.ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=10)
    assert listing.active_adapter_id == "pod@1"
    assert states(stub)["pod@2"] == S.ADAPTER_STATE_CANDIDATE
    assert "pod@2" in engine.engine.models  # the candidate was really generated with, by id
    report = stack["gate_settings"].report_file().read_text()
    assert "pod@1" in report and "pod@2" in report
