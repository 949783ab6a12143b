"""The llama.cpp engine's parts that need no model: the sampler, the step script and prefix sharing, on a toy
vocabulary (the engine itself is tested on real SmolLM2 weights in test_llamacpp_*.py)."""

from __future__ import annotations

import numpy as np

from vispod.generator.backends.base import Step
from vispod.generator.backends.llamacpp_prefix import MIN_SHARED_PREFIX, PrefixSharing
from vispod.generator.backends.llamacpp_sampler import Sampler, SamplerState, Sampling
from vispod.generator.backends.llamacpp_sequence import Request, Seq
from vispod.generator.backends.llamacpp_steps import StepScript

PIECES = [b"Hello", b" world", b".", b"\n", b"Sam:", b" [", b"</s>", b" again"]
HELLO, WORLD, DOT, NL, SAM, BRACKET, EOS, AGAIN = range(len(PIECES))
EOG = np.array([t == EOS for t in range(len(PIECES))])


def _logits(best: int, second: int | None = None) -> np.ndarray:
    x = np.zeros(len(PIECES), dtype=np.float32)
    x[best] = 5.0
    if second is not None:
        x[second] = 4.0
    return x


def _seq(steps: list[Step], prompt: list[int] | None = None) -> Seq:
    sampling = Sampling()
    req = Request(prompt or [HELLO], steps, sampling, None)
    return Seq(req, 0, SamplerState.seeded(sampling))


def _drain(seq: Seq) -> str:
    out = []
    while not seq.req.out.empty():
        out.append(seq.req.out.get_nowait())
    return "".join(out)


def test_greedy_takes_the_best_token_but_not_an_end_before_min_words_nor_a_forbidden_one() -> None:
    sampler = Sampler(PIECES, EOG)
    state = SamplerState.seeded(Sampling())
    assert sampler.sample(_logits(EOS, WORLD), state, Step("", 10), 0) == EOS
    assert sampler.sample(_logits(EOS, WORLD), state, Step("", 10, min_words=2), 1) == WORLD
    assert sampler.sample(_logits(NL, WORLD), state, Step("", 10, min_words=2, stop=("\n",)), 1) == WORLD
    assert sampler.sample(_logits(NL, WORLD), state, Step("", 10, min_words=2, stop=("\n",)), 2) == NL
    assert sampler.sample(_logits(BRACKET, WORLD), state, Step("", 10, forbid=("[",)), 0) == WORLD


def test_no_repeat_ngram_bans_the_token_that_would_repeat_an_ngram() -> None:
    sampler = Sampler(PIECES, EOG)
    state = SamplerState.seeded(Sampling(no_repeat_ngram=2))
    state.feed([HELLO, WORLD, DOT, HELLO])
    assert sampler.sample(_logits(WORLD, AGAIN), state, Step("", 10), 0) == AGAIN   # "Hello world" again: banned


def test_runs_of_a_text_not_to_copy_are_banned_like_repeats() -> None:
    sampler = Sampler(PIECES, EOG)
    state = SamplerState.seeded(Sampling(no_repeat_ngram=3))
    state.ban_runs_of([HELLO, WORLD, DOT, SAM])
    state.feed([SAM, HELLO, WORLD])
    assert sampler.sample(_logits(DOT, AGAIN), state, Step("", 10), 0) == AGAIN      # "Hello world." is the text's
    state.feed([AGAIN])
    assert sampler.sample(_logits(DOT, AGAIN), state, Step("", 10), 0) == DOT        # "world again." is not
    off = SamplerState.seeded(Sampling(no_repeat_ngram=0))
    off.ban_runs_of([HELLO, WORLD, DOT])
    assert off.ngrams == {}


def test_a_seed_draws_the_same_tokens_and_top_k_1_is_greedy() -> None:
    sampler = Sampler(PIECES, EOG)
    logits = np.linspace(0, 1, len(PIECES)).astype(np.float32)

    def draws(seed: int) -> list[int]:
        state = SamplerState.seeded(Sampling(temperature=1.0, top_k=0, seed=seed))
        return [sampler.sample(logits, state, Step("", 10), 0) for _ in range(20)]

    assert draws(3) == draws(3) and len(set(draws(3))) > 1
    greedy = SamplerState.seeded(Sampling(temperature=1.0, top_k=1, seed=3))
    assert sampler.sample(logits, greedy, Step("", 10), 0) == int(np.argmax(logits))


def test_steps_echo_their_text_hold_back_a_possible_stop_and_keep_it_mid_script() -> None:
    script = StepScript(lambda text: [SAM] * len(text.split()), PIECES, EOG)
    seq = _seq([Step("Sam:", 10, stop=("\n",)), Step("Sam:", 10, new_line=True)])
    script.start(seq, 0)
    assert _drain(seq) == "Sam:" and seq.pending == [SAM]
    assert script.take(seq, HELLO) is None and script.take(seq, WORLD) is None
    assert _drain(seq) == "Hello world"
    assert script.take(seq, NL) is None           # the stop ends step 1; mid-script it stays in the text
    assert seq.step_index == 1 and _drain(seq) == "\nSam:"   # step 2 starts on the line the stop began
    assert script.take(seq, EOS) == "stop"         # the end token ends the last step: the request is done


def test_a_step_ends_at_a_sentence_end_after_enough_words_or_at_its_token_bound() -> None:
    script = StepScript(lambda text: [], PIECES, EOG)
    seq = _seq([Step("", 10, soft_words=3)])
    script.start(seq, 0)
    assert script.take(seq, HELLO) is None and script.take(seq, DOT) is None   # a sentence end, but too early
    assert script.take(seq, WORLD) is None and script.take(seq, DOT) is None    # "Hello. world." is 2 words
    assert script.take(seq, AGAIN) is None and script.take(seq, DOT) == "stop"
    assert _drain(seq) == "Hello. world. again."
    seq = _seq([Step("", 2)])
    script.start(seq, 0)
    assert script.take(seq, HELLO) is None and script.take(seq, AGAIN) == "length"
    assert _drain(seq) == "Hello again" and seq.completion_tokens == 2


# The same words under two tokenizers: whole words with their leading space, and one token per character.
TEXT = "one two three four. five six seven eight nine ten eleven twelve"
WORD_PIECES = sorted({piece for w in TEXT.split() for piece in (w.encode(), f" {w}".encode())})
CHAR_PIECES = sorted({c.encode() for c in TEXT})


def _tokens(pieces: list[bytes], text: str) -> list[int]:
    """Greedy longest-match tokenisation of `text` over `pieces`."""
    out, i, raw = [], 0, text.encode()
    while i < len(raw):
        t = max((t for t, p in enumerate(pieces) if raw.startswith(p, i)), key=lambda t: len(pieces[t]))
        out.append(t)
        i += len(pieces[t])
    return out


def _write(pieces: list[bytes], step: Step) -> tuple[str, str | None, int]:
    """Feeds TEXT's tokens to a one-step request until it ends: (the text shown, the finish reason, tokens)."""
    script = StepScript(lambda text: [], pieces, np.zeros(len(pieces), dtype=bool))
    seq = _seq([step])
    script.start(seq, 0)
    reason = None
    for token in _tokens(pieces, TEXT):
        if (reason := script.take(seq, token)) is not None:
            break
    return _drain(seq), reason, seq.completion_tokens


def test_word_limits_end_a_step_on_the_same_words_whatever_the_tokenizer() -> None:
    for step, words, reason in [(Step("", 100, soft_words=3, max_words=8), 4, "stop"),
                                (Step("", 100, max_words=6), 6, "length"),
                                (Step("", 100, soft_words=5, max_words=7), 7, "length")]:
        coarse, fine = _write(WORD_PIECES, step), _write(CHAR_PIECES, step)
        assert coarse[0].split() == fine[0].split() == TEXT.split()[:words], step
        assert coarse[1] == fine[1] == reason
        assert fine[2] > 3 * coarse[2]          # the token counts differ widely; the words do not
    # The token bound stays a safety limit: it ends a step whose words would go on.
    text, reason, tokens = _write(CHAR_PIECES, Step("", 10, max_words=8))
    assert (text, reason, tokens) == (TEXT[:10], "length", 10)


def test_a_request_shares_the_longest_prefix_of_a_running_one_on_its_adapter_never_its_last_token() -> None:
    base = list(range(100, 100 + MIN_SHARED_PREFIX + 8))
    donor = _seq([Step("", 4)], prompt=base)
    short = _seq([Step("", 4)], prompt=[*base[:MIN_SHARED_PREFIX - 1], 1, 2])
    same = _seq([Step("", 4)], prompt=list(base))
    other_adapter = _seq([Step("", 4)], prompt=list(base))
    other_adapter.req.adapter = "a@1"
    sharing = PrefixSharing(True)
    active = {0: donor}
    assert sharing.donor_for(short, active) == (None, 0)
    assert sharing.donor_for(same, active) == (donor, len(base) - 1)
    assert sharing.donor_for(other_adapter, active) == (None, 0)
    assert PrefixSharing(False).donor_for(same, active) == (None, 0)
