"""Fixtures of the adapter delivery flow: a real S3 server (S3Proxy), the trainer's signing key and keyring, a
trained SmolLM2 adapter, and the figures `make e2e-adapters` prints at the end (written to $VISPOD_E2E_REPORT)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vispod.common.adapter_store import AdapterStore
from vispod.common.adapter_store.settings import AdapterStoreSettings
from vispod.common.signing import Keyring, generate_keypair
from vispod.devkit.local_s3 import S3Server, start_s3

REPORT: dict[str, object] = {}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3(tmp_path_factory.mktemp("s3") / "data")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """trainer.key (the Job's Secret) and trainer.pub (every consumer's keyring)."""
    folder = tmp_path_factory.mktemp("keys")
    generate_keypair(folder, "trainer")
    return folder


@pytest.fixture(scope="session")
def keyring(keys: Path) -> Keyring:
    ring_dir = keys / "ring"
    ring_dir.mkdir(exist_ok=True)
    (ring_dir / "trainer.pub").write_bytes((keys / "trainer.pub").read_bytes())
    return Keyring.from_dir(ring_dir)


def store_settings(server: S3Server, keys: Path, bucket: str) -> AdapterStoreSettings:
    server.create_bucket(bucket)
    return AdapterStoreSettings(url=f"s3://{bucket}/vispod", endpoint_url=server.endpoint_url,
                                access_key_id=server.access_key_id, secret_access_key=server.secret_access_key,
                                keyring_dir=keys / "ring", signing_key_file=keys / "trainer.key")


@pytest.fixture
def store_env(s3_server: S3Server, keys: Path, keyring: Keyring) -> AdapterStoreSettings:
    """A fresh bucket per test."""
    return store_settings(s3_server, keys, f"adapters-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def store(store_env: AdapterStoreSettings) -> AdapterStore:
    return store_env.open()


def record(**figures: object) -> None:
    REPORT.update(figures)


def count_published(n: int = 1) -> None:
    REPORT["published"] = int(REPORT.get("published", 0)) + n


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("VISPOD_E2E_REPORT")
    if target:
        Path(target).write_text(json.dumps({**REPORT, "exitstatus": int(exitstatus)}, indent=1))


@pytest.fixture(scope="session")
def published(s3_server: S3Server, keys: Path, keyring: Keyring, kafka_bootstrap: str,
              tmp_path_factory: pytest.TempPathFactory):
    """The trainer, for real: one LoRA step on SmolLM2 (real weights, text-only pairs), published as a signed
    version to the S3 store and announced on the broker. Returns (outcome, store settings, kafka settings, s)."""
    import time

    from vispod.common.settings import KafkaSettings
    from vispod.dataset.caption_pairs import ScenePair, write_pairs
    from vispod.trainer.run import run_training
    from vispod.trainer.settings import TrainerSettings

    root = tmp_path_factory.mktemp("trainer")
    pair = ScenePair("e2e:1:0", "e2e", ("we walked along the beach at sunset .", "the dog chased the waves ."),
                     ((0, 0, "What a golden evening that was, the sky went orange over the water."),
                      (1, 0, "And then the little one ran straight into the surf, barking at every wave.")))
    write_pairs(root / "pairs", [pair, pair],
                lambda captions, speakers, words: ("You write podcasts.", "Scenes:\n" + "\n".join(captions)), {})
    env = store_settings(s3_server, keys, "adapters-e2e")
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=f"e2e{uuid.uuid4().hex[:8]}")
    settings = TrainerSettings(pairs_dir=root / "pairs", base_model=Path("smollm2"), output_dir=root / "out",
                               images_per_pair=0, effective_batch_size=2, micro_batch_size=1, learning_rate=5e-3,
                               max_steps=1, eval_fraction=0.0, serve_metrics=False, publish=True, kafka=kafka,
                               lora_r=4, lora_alpha=8.0, lora_target_modules=["q_proj", "v_proj"],
                               adapter_name="podcast", checkpoint_every_steps=0, device="cpu", metrics_linger_s=0,
                               torch_threads=2, adapter_store=env)
    started = time.monotonic()
    outcome = run_training(settings)
    record(train_and_publish_s=round(time.monotonic() - started, 1))
    count_published()
    return outcome, env, kafka, settings


def variant(adapter_dir: Path, dest: Path, scale: float) -> Path:
    """Another real adapter: the trained one with its B factors scaled (different bytes, still loadable)."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(adapter_dir, dest)
    (dest / "manifest.json").unlink(missing_ok=True)
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    scaled = {k: v * scale if "lora_B" in k else v for k, v in weights.items()}
    save_file(scaled, str(dest / "adapter_model.safetensors"))
    return dest


def publish_version(store: AdapterStore, signer, outcome, version: str, folder: Path | None = None, **kw):
    """Publishes `folder` (default: the trained adapter) as podcast@<version> through the trainer's code."""
    from vispod.trainer.publish import BaseIdentity, publish_adapter, write_manifest

    folder = folder or outcome.result.adapter_dir
    m = outcome.manifest
    manifest = write_manifest(folder, name="podcast", version=version,
                              base=BaseIdentity(m["base_model_id"], m["base_model_revision"], False),
                              dataset_sha256=m["dataset_manifest_sha256"], hyperparameters=m["hyperparameters"],
                              metrics=m["metrics"], code=m["code_version"], target_modules=m["target_modules"])
    event = publish_adapter(store=store, publisher=kw.pop("publisher", None), adapter_dir=folder,
                            manifest=manifest, signer=signer, **kw)
    count_published()
    return event


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[S3Server]:
    """An S3 server of this test's own, which it may stop and restart (an outage)."""
    server = start_s3(tmp_path / "s3-data")
    yield server
    server.stop()


def overwrite(env: AdapterStoreSettings, key: str, data: bytes) -> None:
    """An attacker (or a broken job) with write access to the bucket replaces an object."""
    import boto3

    bucket, prefix = env.url[len("s3://"):].split("/", 1)
    boto3.client("s3", endpoint_url=env.endpoint_url, region_name="us-east-1",
                 aws_access_key_id=env.access_key_id.get_secret_value(),
                 aws_secret_access_key=env.secret_access_key.get_secret_value()).put_object(
        Bucket=bucket, Key=f"{prefix}/{key}", Body=data)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Training SmolLM2 and starting llama.cpp servers take minutes on a busy 2-core machine: more room than the
    suite's default timeout (a stuck test still ends)."""
    for item in items:
        if "e2e_adapters" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(2400))
