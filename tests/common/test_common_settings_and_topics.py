from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import SettingsConfigDict

from vispod.common.logging import redact
from vispod.common.settings import (
    DatasetSettings,
    KafkaSettings,
    ServiceSettings,
    SettingsError,
    load_settings,
)
from vispod.common.topics import Topic, all_topics, dlq_topic, topic_name
from vispod.devkit.checkout import CHECKOUT, use_shared_datasets

REPO_ROOT = Path(__file__).resolve().parents[2]


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VISPOD_DEMO_", extra="ignore")
    max_images: int = 32


def test_bad_settings_fail_at_start_with_the_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISPOD_DEMO_GRPC_PORT", "99999")
    monkeypatch.setenv("VISPOD_DEMO_MAX_IMAGES", "many")
    with pytest.raises(SettingsError) as err:
        load_settings(DemoSettings)
    text = str(err.value)
    assert "VISPOD_DEMO_GRPC_PORT" in text and "VISPOD_DEMO_MAX_IMAGES" in text


def test_kafka_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISPOD_KAFKA_BOOTSTRAP", "a:1,b:2")
    monkeypatch.setenv("VISPOD_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("VISPOD_KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("VISPOD_KAFKA_SASL_PASSWORD", "hunter2")
    settings = load_settings(DemoSettings)
    cfg = settings.kafka.client_config()
    assert cfg["bootstrap_servers"] == ["a:1", "b:2"] and cfg["sasl_plain_password"] == "hunter2"
    assert "hunter2" not in repr(settings)


def test_topic_names_come_from_one_function() -> None:
    assert topic_name(Topic.DIALOGUE_GENERATED) == "vispod.dialogue.generated"
    assert topic_name("imageset.submitted", "staging") == "staging.imageset.submitted"
    assert dlq_topic("generator") == "vispod.dlq.generator"
    assert "vispod.adapter.published" in all_topics() and "vispod.dlq.metrics" in all_topics()
    with pytest.raises(ValueError):
        dlq_topic("../x")
    with pytest.raises(ValueError):
        topic_name("nope")


def test_secrets_are_redacted_in_logs() -> None:
    assert redact({"api_key": "sk-abc", "nested": {"Authorization": "Bearer x"}, "text": "key sk-abcdefghijkl"}) == {
        "api_key": "***", "nested": {"Authorization": "***"}, "text": "key ***"}
    assert KafkaSettings().delivery == "exactly_once"


def test_shared_datasets_are_found_through_one_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VISPOD_DATASETS_ROOT", raising=False)
    assert DatasetSettings().root == Path("/var/lib/vispod/datasets")  # the runtime's default: a mount in images
    use_shared_datasets()  # the developer kit's default: beside the checkout, wherever it is
    assert CHECKOUT == REPO_ROOT
    assert DatasetSettings().root == REPO_ROOT.parent / "shared" / "datasets"
    monkeypatch.setenv("VISPOD_DATASETS_ROOT", str(tmp_path))
    assert DatasetSettings().vist_podcast_50 == tmp_path / "vist-podcast-50"


def test_no_source_names_a_machines_absolute_path() -> None:
    pattern = re.compile(r"""["'](/work|/home|/root|/Users)/""")
    folders = ("services", "tests", "benchmarks", "scripts")
    sources = [p for folder in folders for p in (REPO_ROOT / folder).rglob("*.py")]
    offenders = [f"{path.relative_to(REPO_ROOT)}:{n}" for path in sources
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert offenders == []
