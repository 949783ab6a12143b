"""Session fixtures: one real Kafka broker for the whole run, a fresh topic prefix per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import loopback_only
import pytest
from loopback_only import _stays_on_the_machine  # noqa: F401  (autouse: a test that leaves the machine fails)

from vispod.common.settings import DatasetSettings, KafkaSettings
from vispod.devkit.checkout import use_shared_datasets
from vispod.devkit.local_kafka import Broker, start_broker

use_shared_datasets()  # VISPOD_DATASETS_ROOT: shared/datasets beside the checkout unless set


def pytest_configure(config: pytest.Config) -> None:
    loopback_only.install()
    config.addinivalue_line("markers", "slow: long-running test")
    config.addinivalue_line("markers", "gpu: needs a CUDA device")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real broker: VISPOD_TEST_KAFKA_BOOTSTRAP if set, else one started for this session."""
    external = os.environ.get("VISPOD_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker: Broker = start_broker()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def kafka(kafka_bootstrap: str) -> KafkaSettings:
    """Kafka settings with a topic prefix of this test's own, so tests never see each other's events."""
    return KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def vist_podcast_50() -> Path:
    """The shared vist-podcast-50 set, never bundled: found through VISPOD_DATASETS_ROOT, by default in
    `shared/datasets` beside the repository (where CI puts it)."""
    path = DatasetSettings().vist_podcast_50
    if not path.is_dir():
        pytest.fail(f"{path} not found: put shared/ beside the repository or set VISPOD_DATASETS_ROOT")
    return path


@pytest.fixture(scope="module")
def module_kafka(kafka_bootstrap: str) -> KafkaSettings:
    """Kafka settings for a module's shared service: a topic prefix of the module's own, no redelivery."""
    return KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}", max_attempts=1)
