"""A generator service with adapters on the real broker, for the lifecycle tests: settings of one pod (openai
backend on the scripted engine, trusted lifecycle keys), publishing fake adapters, reading the routing."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from gen_helpers import generator_settings

from vispod.common.artifacts import ArtifactStore
from vispod.common.bus import EventPublisher
from vispod.common.settings import KafkaSettings
from vispod.common.topics import Topic
from vispod.devkit.testing.adapter_files import make_fake_adapter_files, published_event
from vispod.generator.settings import GeneratorSettings
from vispod.v1 import generator_pb2, generator_pb2_grpc


def pod_settings(tmp_path: Path, story_dir: Path, kafka: KafkaSettings, engine_url: str, keys: Path,
                 name: str = "generator-0", **kw) -> GeneratorSettings:
    kw.setdefault("concurrency", 8)
    return generator_settings(story_dir, kafka, backend="openai", openai_url=engine_url,
                              artifact_root=tmp_path / "artifacts", instance_id=name,
                              adapter_state_dir=tmp_path / name / "state", adapter_cache_dir=tmp_path / name / "cache",
                              lifecycle_keys_dir=keys, **kw)


def publish_adapters(kafka: KafkaSettings, settings: GeneratorSettings, tmp_path: Path, *adapter_ids: str) -> None:
    """Fake (structurally valid) adapters for the pod's base model, put in its artifact store and announced."""
    base = settings.resolved_base_model_id()
    store = ArtifactStore(settings.artifact_root)
    trainer = EventPublisher(kafka, "trainer")
    try:
        for n, adapter_id in enumerate(adapter_ids):
            name, version = adapter_id.split("@")
            folder = make_fake_adapter_files(tmp_path / "made" / name / version, base, seed=n)
            uri = store.put_dir(folder, name, version)
            trainer.publish(Topic.ADAPTER_PUBLISHED, published_event(store.path(uri), adapter_id, base,
                                                                     artifact_uri=uri))
    finally:
        trainer.close()


def publish_commands(kafka: KafkaSettings, *commands) -> None:
    publisher = EventPublisher(kafka, "test")
    try:
        for cmd in commands:
            publisher.publish(Topic.ADAPTER_LIFECYCLE, cmd)
    finally:
        publisher.close()


def listing(handle) -> generator_pb2.ListAdaptersResponse:
    with grpc.insecure_channel(f"127.0.0.1:{handle.grpc_port}") as channel:
        return generator_pb2_grpc.GeneratorServiceStub(channel).ListAdapters(generator_pb2.ListAdaptersRequest(),
                                                                             timeout=10)


def states(handle) -> dict[str, tuple[int, float]]:
    return {a.adapter_id: (a.state, a.canary_share) for a in listing(handle).adapters}


def wait_until(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout:g} s"
        time.sleep(0.1)
