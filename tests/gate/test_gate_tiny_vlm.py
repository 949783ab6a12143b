"""The issue's loop with tiny models on the real broker: 3 sample pairs → the trainer trains a tiny random Qwen3-VL
for 2 steps and publishes the adapter → the generator (local backend, the same tiny VLM, peft) verifies and
registers it → the gate generates with it (and the serving model), scores with the metrics service (tiny random
CLIP) and judges (a scripted JudgeService) → refused: it stays a candidate and the base model serves on.

A tiny random model writes no labelled dialogue (its generations come back FAILED and count as losses) and three
stories cannot carry a Wilson lower bound above 0.5, so refusal is the only sound outcome here; promotion
through the real generator is in test_gate_full_loop.py."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from gate_scripted import ScriptedJudge, Servers

from vispod.common.bus import EventReader
from vispod.common.settings import ImageAccessSettings, KafkaSettings
from vispod.common.topics import Topic, dlq_topic
from vispod.devkit.testing import sample_pairs as sample_data
from vispod.devkit.testing.tiny_vlm import build_tiny_qwen3_vl
from vispod.gate.service import build as build_gate
from vispod.gate.settings import GateSettings
from vispod.generator import service as generator_service
from vispod.generator.settings import GeneratorSettings
from vispod.metrics import service as metrics_service
from vispod.metrics.settings import MetricsSettings
from vispod.trainer import run as trainer_run
from vispod.trainer.settings import TrainerSettings
from vispod.v1 import common_pb2, events_pb2, generator_pb2, generator_pb2_grpc

S = events_pb2.AdapterState
pytestmark = pytest.mark.slow  # minutes on 2 cores; still part of CI


def test_trained_tiny_adapter_is_gated_and_refused(tmp_path: Path, kafka: KafkaSettings, builtin_set: Path,
                                                   tiny_clip: str, servers: Servers) -> None:
    model = build_tiny_qwen3_vl(tmp_path / "tiny-qwen3-vl")
    images = ImageAccessSettings(file_roots=[builtin_set], max_images=32)
    common = dict(grpc_port=0, metrics_port=0, shutdown_drain_s=0, shutdown_grace_s=1, images=images)
    gen = generator_service.build(GeneratorSettings(
        backend="local", model_path=model, max_new_tokens=24, kafka=kafka, adapter_state_dir=tmp_path / "gen-state",
        adapter_cache_dir=tmp_path / "gen-cache", instance_id="gen-0", artifact_root=tmp_path / "store",
        **common)).start()
    met = metrics_service.build(MetricsSettings(consume=False, clip_model=tiny_clip, clip_random_init=True,
                                                **common)).start()
    judge = ScriptedJudge(outcomes=[events_pb2.OUTCOME_B_WINS], judges=("scripted",))
    gate_settings = GateSettings(
        kafka=kafka, artifact_root=tmp_path / "gate", eval_set=builtin_set, generator_addr=f"127.0.0.1:{gen.grpc_port}",
        metrics_addr=f"127.0.0.1:{met.grpc_port}", judge_addr=servers.serve(judge), metrics_port=0,
        candidate_wait_s=120, poll_interval_s=0.2, rpc_timeout_s=120, evaluation_timeout_s=300, shutdown_drain_s=0)
    gate = build_gate(gate_settings).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{gen.grpc_port}")
    stub = generator_pb2_grpc.GeneratorServiceStub(channel)
    reader = EventReader(kafka, [Topic.ADAPTER_LIFECYCLE])
    try:
        pairs = sample_data.write_sample_pairs(tmp_path / "pairs", n=3, manifest=False)
        outcome = trainer_run.run_training(TrainerSettings(
            base_model=model, pairs_dir=pairs, output_dir=tmp_path / "train", max_steps=2, effective_batch_size=2,
            micro_batch_size=1, learning_rate=1e-2, eval_fraction=0.0, torch_threads=1, serve_metrics=False,
            checkpoint_every_steps=0, device="cpu", publish=True, kafka=kafka, adapter_name="tinypod",
            artifact_root=tmp_path / "store"))
        adapter_id = outcome.event.adapter_id
        found = reader.read(1, timeout=300, where=lambda e: e.message.actor == "gate")
        assert found, "no gate decision"
        decision = found[0].message
        if decision.evidence["n"] == 0:  # the evaluation did not run: say why (e.g. the generator refused the files)
            dlq = EventReader(kafka, [dlq_topic("generator", kafka.topic_prefix)])
            letters = [e.message.error for e in dlq.read(5, timeout=5)]
            dlq.close()
            pytest.fail(f"gate: {decision.reason}; generator dead letters: {letters}")
        assert decision.adapter_id == adapter_id and decision.state == S.ADAPTER_STATE_CANDIDATE, decision.reason
        assert decision.evidence["n"] == 3 and decision.evidence["win_rate_lower"] <= 0.5
        listing = stub.ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=10)
        assert listing.active_adapter_id == ""  # nothing promoted: the base model serves on
        assert {a.adapter_id: a.state for a in listing.adapters}[adapter_id] == S.ADAPTER_STATE_CANDIDATE
        story = sorted(builtin_set.iterdir())[0]
        request = generator_pb2.GenerateRequest(image_set=events_pb2.ImageSetSubmitted(
            image_set_id="live", images=[common_pb2.ImageRef(uri=(story / "image_1.png").resolve().as_uri())]))
        served = stub.Generate(request, timeout=120).result  # answered (OK or a reasoned FAILED), by the base model
        assert served.adapter_id == "" and (served.status == common_pb2.STATUS_OK or served.error)
    finally:
        reader.close()
        channel.close()
        gate.stop()
        met.stop()
        gen.stop()
    [entry] = [d for d in _decisions(gate_settings) if d["adapter_id"] == adapter_id]
    assert entry["decision"] == "reject" and entry["baseline"] == "base" and len(entry["stories"]) == 3


def _decisions(s: GateSettings) -> list[dict]:
    import json

    return [json.loads(line) for line in s.decisions_path().read_text().splitlines()]
