"""Gemma 3 270M base (real weights, plain prompt) writes a scene-planned dialogue after the worked example: the
dialogue is only what it generated — the plan's turns, each about its scene, within the word budget."""

import re

from gen_helpers import generator_settings, make_event

from vispod.common.embedded_models import resolve_gguf
from vispod.generator.adapters import AdapterRegistry
from vispod.generator.backends.llamacpp import LlamaCppBackend
from vispod.generator.engine import Generator
from vispod.generator.few_shot import example_turns
from vispod.generator.scene_plan import scene_cue
from vispod.v1 import common_pb2


def test_a_base_model_continues_after_the_example_and_only_its_own_turns_are_parsed(story_dir) -> None:
    s = generator_settings(story_dir, backend="llamacpp", model_path=resolve_gguf("gemma3-270m"), prompt_format="plain",
                           text_input="captions", context_tokens=2048, temperature=0.7)
    backend = LlamaCppBackend.from_settings(s)
    try:
        r = Generator(s, backend, AdapterRegistry(s.adapter_state_dir, s.adapter_cache_dir, "base")).generate(
            make_event(story_dir, n=3, target_words=120))
    finally:
        backend.close()
    assert r.status == common_pb2.STATUS_OK and r.few_shot, r.error
    assert [t.speaker for t in r.dialogue.turns] == ["Speaker 1", "Speaker 2"] * 3
    assert [list(t.image_refs) for t in r.dialogue.turns] == [[0], [0], [1], [1], [2], [2]]
    example = example_turns("v1", facts=False)
    assert not any(t.text in example for t in r.dialogue.turns)
    # The example is a pattern, not words to copy: no run of 8 of its words comes back (no_repeat_ngram bans 6 tokens).
    runs = {tuple(words[i:i + 8]) for t in example for words in [_words(t)] for i in range(len(words) - 7)}
    written = _words(" ".join(t.text for t in r.dialogue.turns))
    assert not [w for i in range(len(written) - 7) if (w := tuple(written[i:i + 8])) in runs], r.dialogue.text
    # The words the model wrote: a scene's first turn opens with the plan's cue.
    cues = [len(scene_cue(k // 2, 3).split()) if k % 2 == 0 else 0 for k in range(6)]
    written = [len(t.text.split()) - c for t, c in zip(r.dialogue.turns, cues, strict=True)]
    assert all(r.turn_budget.min_words <= n <= r.turn_budget.max_words for n in written), (written, r.dialogue.text)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())
