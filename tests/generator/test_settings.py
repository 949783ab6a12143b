"""GeneratorSettings: env prefix, start-up errors that name the setting."""

from __future__ import annotations

import pytest

from vispod.common.settings import SettingsError, load_settings
from vispod.generator.settings import GeneratorSettings


def test_env_prefix_and_defaults(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("VISPOD_GENERATOR_BACKEND", "tgi")
    monkeypatch.setenv("VISPOD_GENERATOR_TGI_ADAPTERS", '["story@1", "story@2"]')
    monkeypatch.setenv("VISPOD_GENERATOR_OPENAI_API_KEY", "sk-secret")
    s = load_settings(GeneratorSettings)
    assert s.backend == "tgi" and s.tgi_adapters == ["story@1", "story@2"] and s.default_target_words == 800
    assert "sk-secret" not in repr(s) and s.openai_api_key.get_secret_value() == "sk-secret"
    assert s.grpc_port == 8081 and s.metrics_port == 8082 and s.concurrency == 1


def test_local_needs_a_model_and_smollm2_is_text_only(monkeypatch) -> None:
    monkeypatch.setenv("VISPOD_GENERATOR_BACKEND", "local")
    with pytest.raises(SettingsError, match="model_path is required"):
        load_settings(GeneratorSettings)
    with pytest.raises(SettingsError, match="text-only"):
        load_settings(GeneratorSettings, model_path="smollm2")
    assert load_settings(GeneratorSettings, model_path="smollm2", text_only=True).text_only
