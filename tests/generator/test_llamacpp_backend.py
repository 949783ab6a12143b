"""The llama.cpp backend on the real SmolLM2-135M-Instruct GGUF: batching, sampling, steps, cancellation."""

import threading
import time

import pytest

from vispod.common.embedded_models import resolve_gguf
from vispod.generator.backends.base import GenerationInput, Step

SYSTEM = "You are a helpful assistant."


@pytest.fixture(scope="module")
def backend():
    from vispod.generator.backends.llamacpp import LlamaCppBackend

    b = LlamaCppBackend(resolve_gguf("smollm2"), n_parallel=4, n_ctx_per_seq=2048)
    yield b
    b.close()


def _text(backend, **kw) -> tuple[str, object]:
    inp = GenerationInput(system=SYSTEM, user=kw.pop("user", "Describe a day at the beach."), **kw)
    stream = backend.stream(inp)
    return "".join(stream), stream


def test_greedy_is_deterministic_and_streams_the_whole_text(backend):
    a, sa = _text(backend, max_new_tokens=40, temperature=0.0)
    b, _ = _text(backend, max_new_tokens=40, temperature=0.0)
    assert a == b and len(a.split()) > 10
    assert sa.completion_tokens == 40 and sa.finish_reason == "length"
    assert sa.prompt_tokens > 10
    assert backend.random_weights is False


def test_seeded_sampling_gives_the_same_text_alone_and_in_a_batch(backend):
    alone, _ = _text(backend, max_new_tokens=30, temperature=0.9, seed=11)
    results: dict[int, str] = {}

    def run(i: int) -> None:
        results[i] = _text(backend, max_new_tokens=30, temperature=0.9, seed=11 if i == 0 else 100 + i,
                           user="Describe a day at the beach." if i == 0 else f"Name {i} fruits.")[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results[0] == alone
    assert len(set(results.values())) == 4


def test_stop_string_ends_the_generation_and_is_not_returned(backend):
    text, stream = _text(backend, user="Write three short lines about rain.", max_new_tokens=120, temperature=0.0,
                         stop=("\n",))
    assert "\n" not in text and text.strip()
    assert stream.finish_reason == "stop" and stream.completion_tokens < 120


def test_scripted_steps_write_one_labelled_line_each_with_a_minimum_length(backend):
    steps = [Step(text="[Scene 1]\nSpeaker 1:", max_new_tokens=200, min_words=15, max_words=45, stop=("\n",),
                  new_line=True),
             Step(text="Speaker 2:", max_new_tokens=200, min_words=15, soft_words=30, max_words=45, stop=("\n",),
                  new_line=True)]
    text, stream = _text(backend, user="Two hosts talk about a fair.", steps=steps, temperature=0.7, seed=3)
    lines = text.split("\n")
    assert lines[0] == "[Scene 1]"
    assert lines[1].startswith("Speaker 1:") and lines[2].startswith("Speaker 2:") and len(lines) == 3
    # 15 to 45 words a turn, the label not counted
    assert all(15 <= len(line.split()) - 2 <= 45 for line in lines[1:]), lines
    assert stream.completion_tokens >= 30


def test_closing_a_stream_cancels_it_and_frees_its_slot(backend):
    inp = GenerationInput(system=SYSTEM, user="Count from one to a thousand in words.", max_new_tokens=2000)
    streams = [backend.stream(inp) for _ in range(4)]
    for s in streams:  # every slot busy, then each client goes away after its first chunk
        next(iter(s))
        s.chunks.close()
    deadline = time.monotonic() + 120
    while backend.engine._active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not backend.engine._active, "cancelled sequences must leave their slots"
    assert all(s.finish_reason == "" and s.completion_tokens < 2000 for s in streams)
    text, stream = _text(backend, max_new_tokens=10, temperature=0.0)
    assert text and stream.completion_tokens == 10


def test_no_repeat_ngram_stops_a_loop_but_not_one_quote_of_the_prompt(backend):
    phrase = "monday, tuesday, wednesday"
    user = "List the days of the week, over and over."
    free, _ = _text(backend, user=user, max_new_tokens=80, temperature=0.0)
    assert free.lower().count(phrase) >= 2            # what the ban has to stop: the loop
    backend.no_repeat_ngram = 4
    try:
        banned, stream = _text(backend, user=user, max_new_tokens=80, temperature=0.0)
    finally:
        backend.no_repeat_ngram = 0
    assert banned.lower().count(phrase) <= 1
    tokens = backend.engine.tokenize(banned)
    grams = [tuple(tokens[i:i + 4]) for i in range(len(tokens) - 3)]
    assert grams and len(set(grams)) >= len(grams) - 1, banned   # re-tokenising may merge one seam
    assert stream.completion_tokens >= 5


def test_a_step_never_samples_a_forbidden_string(backend):
    user = "Write a list of scene markers like [Scene 1], [Scene 2], [Scene 3] and so on, up to [Scene 9]."
    free = "".join(backend.stream(GenerationInput(system=SYSTEM, user=user, temperature=0.0, steps=[
        Step(text="Markers:", max_new_tokens=40)])))
    assert "[" in free
    text = "".join(backend.stream(GenerationInput(system=SYSTEM, user=user, temperature=0.0, steps=[
        Step(text="Markers:", max_new_tokens=40, forbid=("[",))])))
    assert "[" not in text and len(text.split()) > 5
