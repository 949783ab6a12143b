"""A request's steps on the llama.cpp engine: each step appends its text to the sequence (labels, scene markers),
then the model writes until a stop string, its end token, a sentence end after `soft_words`, `max_words` or the
step's token bound. Word limits count the words of the decoded text the model wrote in the step, whatever its
tokenizer. Sampled tokens become text on the request's stream; what could be the start of a stop string is held
back until it is known not to be one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vispod.generator.backends.llamacpp_sequence import Seq

_SENTENCE_ENDS = (".", "!", "?", "…", '."', '!"', '?"', ".”", "!”", "?”")


class StepScript:
    def __init__(self, tokenize: Callable[[str], list[int]], pieces: list[bytes], eog: np.ndarray) -> None:
        self._tokenize = tokenize
        self._pieces = pieces
        self._eog = eog

    def start(self, seq: Seq, index: int) -> None:
        """Begins step `index`: its text is queued for the model (and written to the stream if echoed)."""
        seq.step_index = index
        seq.step_tokens = 0
        seq.step_words = 0
        seq.step_text = ""
        seq.emitted_upto = 0
        text = seq.step.text
        if seq.step.new_line and seq.last_char not in ("", "\n") and not text.startswith("\n"):
            text = "\n" + text
        if text:
            seq.pending.extend(self._tokenize(text))
            if seq.step.echo:
                _emit(seq, text)
            else:
                seq.last_char = text[-1]

    def flush(self, seq: Seq) -> None:
        """Writes what the current step held back (the sequence ends early)."""
        if seq.step_index >= 0 and seq.emitted_upto < len(seq.step_text):
            _emit(seq, seq.step_text[seq.emitted_upto:])

    def take(self, seq: Seq, token: int) -> str | None:
        """Adds a sampled token; the finish reason (stop | length) when it ended the request's last step."""
        step = seq.step
        if self._eog[token]:
            seq.completion_tokens += 1
            seq.step_tokens += 1
            _emit(seq, seq.step_text[seq.emitted_upto:])
            return self._end_step(seq, "stop")
        before = seq.decoder.getstate()
        text = seq.step_text + seq.decoder.decode(self._pieces[token])
        words = count_words(text)
        if step.max_words and words > step.max_words:
            # The token starts a word beyond the limit: the step ends without it (never fed, never shown).
            seq.decoder.setstate(before)
            _emit(seq, seq.step_text[seq.emitted_upto:])
            return self._end_step(seq, "length")
        seq.completion_tokens += 1
        seq.step_tokens += 1
        seq.sampler.recent.append(token)
        seq.pending.append(token)
        seq.step_text = text
        seq.step_words = words
        hit = _find_stop(text, step.stop, seq.emitted_upto) if words >= step.min_words else None
        if hit is not None:
            end = hit
            if seq.step_index < len(seq.req.steps) - 1:
                # Mid-script the stop string stays in the text, as it stays in the sequence.
                end = hit + next(len(s) for s in step.stop if text.startswith(s, hit))
            _emit(seq, text[seq.emitted_upto:end])
            return self._end_step(seq, "stop")
        # Hold back what could be the start of a stop string.
        hold = max((len(s) - 1 for s in step.stop), default=0)
        safe = len(seq.step_text) - hold
        if safe > seq.emitted_upto:
            _emit(seq, seq.step_text[seq.emitted_upto:safe])
            seq.emitted_upto = safe
        if step.soft_words and words >= step.soft_words and text.rstrip().endswith(_SENTENCE_ENDS):
            _emit(seq, seq.step_text[seq.emitted_upto:])
            return self._end_step(seq, "stop")
        if seq.step_tokens >= step.max_new_tokens:
            _emit(seq, seq.step_text[seq.emitted_upto:])
            return self._end_step(seq, "length")
        return None

    def _end_step(self, seq: Seq, reason: str) -> str | None:
        tail = seq.decoder.decode(b"", final=True)
        if tail and reason == "length":
            _emit(seq, tail)
        seq.decoder.reset()
        if seq.step_index == len(seq.req.steps) - 1:
            return reason
        # An end token is not fed back: the next step continues from what the model wrote before it.
        self.start(seq, seq.step_index + 1)
        return None


def count_words(text: str) -> int:
    """Words as every limit counts them: runs of non-whitespace (a word being written counts already)."""
    return len(text.split())


def _emit(seq: Seq, text: str) -> None:
    if text:
        seq.req.out.put(text)
        seq.last_char = text[-1]


def _find_stop(text: str, stops: tuple[str, ...], start: int) -> int | None:
    """Index of the earliest stop string in text (searching from a little before `start`), else None."""
    best = None
    for s in stops:
        i = text.find(s, max(0, start - len(s)))
        if i >= 0 and (best is None or i < best):
            best = i
    return best
