"""`vispod up --store s3`: the stack starts its own S3 server (S3Proxy) beside the broker, the generator verifies
signed versions from it before loading them, and unsigned local folders are refused with the reason."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import grpc
from vispod_cli import VISPOD, lines_until_ready

from vispod.common.bus import EventPublisher, EventReader
from vispod.common.embedded_models import resolve_gguf
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic, dlq_topic
from vispod.devkit.demo_adapter import publish_signed
from vispod.devkit.local_adapter_store import ENV_FILE, store_settings
from vispod.devkit.testing.adapter_files import make_gguf_base_adapter, published_event
from vispod.trainer.publish import text_base_identity, write_manifest
from vispod.v1 import events_pb2, generator_pb2, generator_pb2_grpc


def _states(address: str) -> dict[str, int]:
    with grpc.insecure_channel(address) as channel:
        listing = generator_pb2_grpc.GeneratorServiceStub(channel).ListAdapters(generator_pb2.ListAdaptersRequest(),
                                                                                timeout=10)
    return {a.adapter_id: a.state for a in listing.adapters}


def test_up_with_the_s3_store_loads_signed_versions_and_refuses_unsigned_folders(kafka: KafkaSettings,
                                                                                 tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISPOD_GENERATOR_", "VISPOD_ADAPTER_STORE_"))}
    env.update(VISPOD_KAFKA_BOOTSTRAP=kafka.bootstrap, VISPOD_KAFKA_TOPIC_PREFIX=kafka.topic_prefix,
               VISPOD_GENERATOR_CONCURRENCY="1", PYTHONUNBUFFERED="1")
    workdir = tmp_path / "up"
    proc = subprocess.Popen([*VISPOD, "up", "--store", "s3", "--services", "generator", "--workdir", str(workdir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    trainer = EventPublisher(kafka, "trainer")
    dlq = EventReader(kafka, [dlq_topic("generator", kafka.topic_prefix)])
    try:
        lines = lines_until_ready(proc, 400)
        assert lines and lines[-1].startswith("ready"), "".join(lines)
        store_line = next(line for line in lines if line.startswith("adapter store: "))
        assert "s3://vispod-adapters/vispod on http://127.0.0.1:" in store_line, store_line
        grpc_line = next(line for line in lines if line.startswith("generator: grpc "))
        generator = grpc_line.split()[2]

        # The trainer's settings: the store, its credentials and the private key, readable by the owner only.
        env_file = workdir / ENV_FILE
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        folder = make_gguf_base_adapter(resolve_gguf("smollm2"), tmp_path / "made" / "1", "smollm2", seed=1)
        manifest = write_manifest(folder, name="story", version="1", base=text_base_identity("smollm2"),
                                  dataset_sha256="0" * 64, hyperparameters={"lora_r": 4, "lora_alpha": 8.0},
                                  metrics={}, code="test", target_modules=["q_proj", "v_proj"])
        # As `vispod demo --store s3` publishes its adapter.
        assert publish_signed({"adapter_dir": str(folder), "manifest": manifest}, env_file, kafka) == "story@1"
        assert store_settings(env_file).open().versions("story") == ["1"]

        # An unsigned local folder (what `--store files` accepts) is now refused: dead-lettered with the reason.
        unsigned = make_gguf_base_adapter(resolve_gguf("smollm2"), tmp_path / "made" / "2", "smollm2", seed=2)
        trainer.publish(Topic.ADAPTER_PUBLISHED, published_event(unsigned, "story@2", "smollm2"))
        letters = dlq.read(1, timeout=120)
        assert letters and "bad_signature" in letters[0].message.error and "story@2" in letters[0].message.error

        deadline = time.monotonic() + 180
        while _states(generator).get("story@1") != events_pb2.ADAPTER_STATE_CANDIDATE:
            assert time.monotonic() < deadline, _states(generator)
            time.sleep(0.5)
        assert "story@2" not in _states(generator)
        # The verified copy came from the S3 server's bucket (S3Proxy keeps objects as files under its data dir).
        assert any((workdir / "s3" / "data" / "vispod-adapters").rglob("*")), "nothing stored in the bucket"
    finally:
        trainer.close()
        dlq.close()
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, rest
    assert "stopped" in rest
