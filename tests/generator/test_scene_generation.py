"""A scene-planned generation end to end on a backend that runs the plan's steps: what the record says about the
plan, what the model is prompted with, and which photo each turn is about."""

from __future__ import annotations

from gen_helpers import generator_settings, make_event
from step_backend import ScriptedStepBackend

from vispod.generator.adapters import AdapterRegistry
from vispod.generator.engine import Generator
from vispod.generator.scene_plan import turn_budget
from vispod.v1 import common_pb2

LINES = ["What a day that was, the sea was calm.", "It really was, and the people there were lovely."]


def _generator(story_dir, backend: ScriptedStepBackend, **kw) -> Generator:
    s = generator_settings(story_dir, backend="llamacpp", text_input="captions", **kw)
    return Generator(s, backend, AdapterRegistry(s.adapter_state_dir, s.adapter_cache_dir, "base"))


def test_a_planned_dialogue_records_its_turn_budget_in_words(story_dir) -> None:
    backend = ScriptedStepBackend(LINES)
    r = _generator(story_dir, backend).generate(make_event(story_dir, target_words=600))
    assert r.status == common_pb2.STATUS_OK and len(r.dialogue.turns) == 10
    lo, soft, hi = turn_budget(600, 10)
    assert (r.turn_budget.min_words, r.turn_budget.soft_words, r.turn_budget.max_words) == (lo, soft, hi)
    assert all((s.min_words, s.soft_words, s.max_words) == (lo, soft, hi) for s in backend.inputs[0].steps)


def test_a_dialogue_written_in_one_go_has_no_turn_budget(story_dir) -> None:
    r = _generator(story_dir, ScriptedStepBackend(LINES), plan="whole").generate(make_event(story_dir))
    assert r.status == common_pb2.STATUS_OK and len(r.dialogue.turns) == 2
    assert not r.HasField("turn_budget")
