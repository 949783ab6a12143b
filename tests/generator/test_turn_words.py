"""Turn budgets are words, the same for every model: SmolLM2 (chat) and Gemma 3 270M (base, plain prompt), whose
tokenizers differ, write turns within the same word limits under the same plan."""

import pytest

from vispod.common.embedded_models import resolve_gguf
from vispod.generator.backends.base import GenerationInput
from vispod.generator.scene_plan import scene_steps


@pytest.mark.parametrize(("model", "prompt_format"), [("smollm2", "chat"), ("gemma3-270m", "plain")])
def test_the_same_word_budget_gives_turns_within_its_limits_whatever_the_tokenizer(model, prompt_format):
    from vispod.generator.backends.llamacpp import LlamaCppBackend

    steps = scene_steps(num_scenes=1, num_speakers=2, turns_per_scene=2, target_words=120)[:2]
    lo, hi = steps[0].min_words, steps[0].max_words
    backend = LlamaCppBackend(resolve_gguf(model), prompt_format=prompt_format, n_parallel=1, n_ctx_per_seq=1024,
                              repeat_penalty=1.2)
    try:
        inp = GenerationInput(system="You write podcast conversations.", temperature=0.7, seed=5, steps=steps,
                              user="Two hosts talk about a day at the beach: sand, waves and a picnic.")
        stream = backend.stream(inp)
        text = "".join(stream)
    finally:
        backend.close()
    turns = [line for line in text.split("\n") if line.startswith("Speaker")]
    assert len(turns) == 2, text
    # The words each turn's model wrote: the line less its label and the scene's cue (the plan's words).
    written = [len(line.split()) - len(step.text.split("\n")[-1].split())
               for line, step in zip(turns, steps, strict=True)]
    assert all(lo <= n <= hi for n in written), (written, lo, hi, text)
    assert stream.completion_tokens <= sum(s.max_new_tokens for s in steps)
