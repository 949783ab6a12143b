"""Prompt-prefix sharing in the llama.cpp engine (real SmolLM2-135M-Instruct GGUF): requests on the same adapter
that start alike compute the common prefix once. The copy is exact: a follower writes exactly what the same
request writes alone when its prompt is computed in the same two chunks (the prefix, then the rest). llama.cpp's
numbers depend on how a prompt is cut into batches (one 87-token batch vs 86 + 1 moves SmolLM2's logits by up to
0.4), so "alone" is compared with the same cut."""

import threading

import pytest

from vispod.common.embedded_models import resolve_gguf
from vispod.generator.backends import llamacpp_engine
from vispod.generator.backends.base import Step
from vispod.generator.backends.llamacpp_engine import LlamaEngine
from vispod.generator.backends.llamacpp_prefix import MIN_SHARED_PREFIX
from vispod.generator.backends.llamacpp_sampler import Sampling

INSTRUCTIONS = ("<|im_start|>system\nYou are two podcast hosts who talk about a family's photos, one photo at a "
                "time, in a warm and curious tone. Keep every turn to two or three sentences.<|im_end|>\n"
                "<|im_start|>user\nThe photos, in story order: the whole family visited a local fair; the kids "
                "rode the carousel; dad won a stuffed bear at the ring toss.")


@pytest.fixture(scope="module")
def engine():
    e = LlamaEngine(resolve_gguf("smollm2"), n_parallel=4, n_ctx_per_seq=1024)
    yield e
    e.close()


def _prompt(engine: LlamaEngine, ask: str) -> list[int]:
    return engine.tokenize(f"{INSTRUCTIONS} {ask}<|im_end|>\n<|im_start|>assistant\n", special=True)


def _run_together(engine: LlamaEngine, prompts: list[list[int]]) -> list[tuple[str, int]]:
    streams = [engine.submit(p, [Step(text="", max_new_tokens=24)], Sampling(temperature=0.0)) for p in prompts]
    out: list[tuple[str, int]] = [("", 0)] * len(streams)

    def read(i: int) -> None:
        out[i] = ("".join(streams[i]), 0)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(streams))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return [(text, s.cached_tokens) for (text, _), s in zip(out, streams, strict=True)]


def _alone_cut_at(engine: LlamaEngine, prompt: list[int], first: int, monkeypatch) -> str:
    """The request alone, its prompt computed as `first` tokens, then the rest (one sequence: a round's prompt
    budget is PREFILL_TOKENS + 1)."""
    with monkeypatch.context() as m:
        m.setattr(llamacpp_engine, "PREFILL_TOKENS", first - 1)
        return _run_together(engine, [prompt])[0][0]


def test_requests_that_start_alike_compute_the_prefix_once_and_write_what_they_write_alone(engine, monkeypatch):
    same = _prompt(engine, "Write the first turn.")
    other = _prompt(engine, "Now write a closing line for the episode.")
    common = next(i for i, (a, b) in enumerate(zip(same, other, strict=False)) if a != b)
    assert MIN_SHARED_PREFIX <= common < len(same) - 1 < llamacpp_engine.PREFILL_TOKENS

    alone = _run_together(engine, [same])[0]
    assert alone[1] == 0 and len(alone[0].split()) >= 8
    together = _run_together(engine, [same, same, other])
    assert [c for _, c in together] == [0, len(same) - 1, common]   # the first computes the prefix
    assert together[0][0] == alone[0]
    assert together[1][0] == _alone_cut_at(engine, same, len(same) - 1, monkeypatch)
    assert together[2][0] == _alone_cut_at(engine, other, common, monkeypatch)


def test_a_short_common_start_is_not_shared(engine):
    a = engine.tokenize("<|im_start|>user\nName three rivers.<|im_end|>\n<|im_start|>assistant\n", special=True)
    b = engine.tokenize("<|im_start|>user\nName three lakes.<|im_end|>\n<|im_start|>assistant\n", special=True)
    assert [c for _, c in _run_together(engine, [a, b])] == [0, 0]


def test_sharing_can_be_switched_off_for_reproducible_runs():
    e = LlamaEngine(resolve_gguf("smollm2"), n_parallel=2, n_ctx_per_seq=512, share_prefixes=False)
    try:
        prompt = _prompt(e, "Write the first turn.")
        assert [c for _, c in _run_together(e, [prompt, prompt])] == [0, 0]
    finally:
        e.close()
