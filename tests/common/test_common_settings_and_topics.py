from __future__ import annotations

import pytest
from pydantic_settings import SettingsConfigDict

from vispod.common.logging import redact
from vispod.common.settings import KafkaSettings, ServiceSettings, SettingsError, load_settings
from vispod.common.topics import Topic, all_topics, dlq_topic, topic_name


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
