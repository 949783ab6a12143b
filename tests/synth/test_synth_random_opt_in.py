"""Random weights only when asked for: synth without a model refuses to start unless told to draw with the tiny
random pipeline; `vispod up` is what asks, and says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from vispod.common.random_weights import has_random_weights
from vispod.devkit.local_stack import EMBEDDED_DEFAULTS
from vispod.synth.service import resolve_model
from vispod.synth.settings import SynthSettings


@pytest.fixture(autouse=True)
def _no_synth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("VISPOD_SYNTH_TINY_IF_UNSET", "VISPOD_SYNTH_MODEL_PATH"):
        monkeypatch.delenv(key, raising=False)


def test_no_model_is_an_error_that_names_both_settings(tmp_path: Path) -> None:
    settings = SynthSettings(artifact_root=tmp_path)
    assert settings.model_path is None and settings.tiny_if_unset is False
    with pytest.raises(SystemExit) as err:
        resolve_model(settings)
    assert "VISPOD_SYNTH_MODEL_PATH" in str(err.value) and "VISPOD_SYNTH_TINY_IF_UNSET=true" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # nothing was built


def test_the_opt_in_builds_a_labelled_random_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISPOD_SYNTH_TINY_IF_UNSET", "true")
    resolved = resolve_model(SynthSettings(artifact_root=tmp_path))
    assert resolved.model_path is not None and resolved.model_path.parent == tmp_path
    assert (resolved.model_path / "model_index.json").is_file() and has_random_weights(resolved.model_path)


def test_vispod_up_opts_in_for_synth() -> None:
    assert EMBEDDED_DEFAULTS["synth"] == {"VISPOD_SYNTH_TINY_IF_UNSET": "true"}
