"""A scene-planned generation end to end on a backend that runs the plan's steps: what the record says about the
plan, what the model is prompted with, and which photo each turn is about."""

from __future__ import annotations

from gen_helpers import generator_settings, make_event
from step_backend import ScriptedStepBackend

from vispod.generator.adapters import AdapterRegistry
from vispod.generator.engine import Generator
from vispod.generator.few_shot import example_scenes, example_turns, worked_example
from vispod.generator.scene_plan import FIRST_CUE, turn_budget
from vispod.v1 import common_pb2

LINES = ["What a day that was, the sea was calm.", "It really was, and the people there were lovely."]


class ListedFacts:
    """Perception's facts given per photo, in the order the photos are perceived (the engine's wiring only)."""

    def __init__(self, labels: list[list[str]]) -> None:
        self.models: list = []
        self.labels = labels
        self.seen = 0

    def perceive(self, image, content_sha256: str = "") -> common_pb2.Perception:
        facts = common_pb2.Perception()
        for label in self.labels[self.seen % len(self.labels)]:
            facts.objects.add(label=label, score=0.9)
        self.seen += 1
        return facts


def _generator(story_dir, backend: ScriptedStepBackend, perceiver=None, **kw) -> Generator:
    s = generator_settings(story_dir, backend="llamacpp", **{"text_input": "captions", **kw})
    return Generator(s, backend, AdapterRegistry(s.adapter_state_dir, s.adapter_cache_dir, "base"), perceiver=perceiver)


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


def test_a_base_model_prompt_opens_with_the_worked_example_then_the_request(story_dir) -> None:
    backend = ScriptedStepBackend(LINES)
    r = _generator(story_dir, backend, prompt_format="plain").generate(make_event(story_dir))
    user = backend.inputs[0].user
    example = worked_example(version="v1", facts=False, plan="scenes")
    assert r.status == common_pb2.STATUS_OK and r.few_shot
    assert user.startswith(example) and user.index("Q&A-style podcast") > len(example)
    # the example's scenes and conversation, as the plan writes them, then the request's own scenes
    first = example_scenes("v1", facts=False)[0]
    assert f"[Scene 1: {first.text}]\nSpeaker 1: {FIRST_CUE} {first.turns[0]}\nSpeaker 2: {first.turns[1]}" in example
    assert user.index("Scene 1: we drove to the beach") > len(example)
    # the parser reads only what was generated: the dialogue is the plan's ten turns, none of the example's
    assert len(r.dialogue.turns) == 10 and not any(t.text in example_turns("v1", False) for t in r.dialogue.turns)
    assert [list(t.image_refs) for t in r.dialogue.turns][::2] == [[0], [1], [2], [3], [4]]
    # and the example's turns are the pattern, not words to copy
    assert backend.inputs[0].no_copy == example_turns("v1", facts=False) and len(example_turns("v1", False)) == 6


def test_chat_prompts_have_no_example_unless_asked(story_dir) -> None:
    backend = ScriptedStepBackend(LINES)
    r = _generator(story_dir, backend).generate(make_event(story_dir))
    assert not r.few_shot and example_scenes("v1", facts=False)[0].turns[0] not in backend.inputs[0].user
    assert backend.inputs[0].no_copy == ()
    r = _generator(story_dir, backend, few_shot=True).generate(make_event(story_dir))
    assert r.few_shot and backend.inputs[1].user.startswith(worked_example(version="v1", facts=False, plan="scenes"))


def test_in_facts_mode_each_planned_turn_is_tagged_with_its_scene_alone(story_dir) -> None:
    # Every photo lists people: the turns that talk about "the people" are still about their own scene only.
    perceiver = ListedFacts([["person", "person", "boat"], ["person", "dog"], ["person", "person", "cake"]])
    backend = ScriptedStepBackend(["The people there and the boat were lovely.", "All those people, what a crowd!"])
    r = _generator(story_dir, backend, perceiver, text_input="facts", prompt_format="plain").generate(
        make_event(story_dir, n=3))
    assert r.status == common_pb2.STATUS_OK and r.few_shot
    assert r.images[0].perception.objects[0].label == "person"
    assert [list(t.image_refs) for t in r.dialogue.turns] == [[0], [0], [1], [1], [2], [2]]
    # the facts-mode example opened the prompt, then the request's own facts
    user = backend.inputs[0].user
    assert user.startswith(worked_example(version="v1", facts=True, plan="scenes"))
    assert "Scene 1: two people and a boat" in user and "Scene 2: a person and a dog" in user
