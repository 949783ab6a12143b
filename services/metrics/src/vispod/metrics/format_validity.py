"""Is a generated dialogue a usable podcast script at all? One check, its reasons listed.

A dialogue is valid iff all of:
- **speakers and turns**: the robust parser (speaker_turns.py) finds at least `MIN_SPEAKERS` (2) distinct
  speakers and at least `MIN_TURNS` (6) turns (consecutive segments of one speaker are one turn);
- **no echoed prompt**: no run of `ECHO_RUN_WORDS` (8) consecutive words of the output — the whole text,
  preamble included — also occurs in the prompt (its instructions, captions or few-shot examples). Words are
  style.tokens(): lower case, punctuation separates words. An empty prompt switches the check off (the paper's
  published transcripts come without one);
- **no exact repeat**: no turn text appears twice, and no sentence of at least `REPEAT_SENTENCE_WORDS` (6)
  words appears twice anywhere in the turns (compared as style.tokens(), so case and punctuation do not hide a
  loop). Turns shorter than `MIN_REPEAT_TURN_WORDS` (3) words ("Yeah.", "Exactly!") may recur: people say
  them, so they are no sign of a decoding loop;
- **no near-duplicate turns**: no two turns of at least `NEAR_DUPLICATE_MIN_WORDS` (6) words whose word-trigram
  sets overlap by Jaccard ≥ `NEAR_DUPLICATE_JACCARD` (0.6) — a loop that changes a word or two each time;
- **no label echo**: no speaker label ("Speaker 2:", "Host:", a name the dialogue uses as a label) inside a
  turn's text — the model wrote the other part too, or repeated the label the scaffold had already written.

The check reads the text alone (the labels the model wrote), never the scaffold's structured turns: a
generator that writes every label itself is measured the same way as one whose plan wrote them. Each failure
has its own code (speakers | turns | echo | exact_repeat | near_duplicate | label_echo) so that they are counted
apart.

Distinct-2, average turn length and switch rate come from style.robust_style_of_turns on the same turns.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from vispod.metrics.speaker_turns import Turn, normalise_name, parse_turns
from vispod.metrics.style import StyleResult, robust_style_of_turns, tokens
from vispod.v1 import common_pb2

MIN_SPEAKERS = 2
MIN_TURNS = 6
ECHO_RUN_WORDS = 8
REPEAT_SENTENCE_WORDS = 6
MIN_REPEAT_TURN_WORDS = 3
NEAR_DUPLICATE_MIN_WORDS = 6
NEAR_DUPLICATE_JACCARD = 0.6
_ROLE_LABEL = r"(?:Speaker\s*\d+|Host(?:\s*\d+)?|Co-?host|Guest(?:\s*\d+)?|Narrator)"
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


@dataclass(frozen=True)
class FormatCheck:
    valid: bool
    reasons: tuple[str, ...]  # empty iff valid
    # one short code per reason: speakers | turns | echo | exact_repeat | near_duplicate | label_echo
    codes: tuple[str, ...]
    num_speakers: int
    num_turns: int
    echoed: str | None  # the first echoed run of words, if any
    repeated: str | None  # the first repeated turn or sentence, if any
    near_duplicate: tuple[str, str] | None  # the first pair of near-duplicate turns, if any
    label_echo: str | None  # the first label found inside a turn, if any
    style: StyleResult  # robust style of the parsed turns (distinct_2, avg_turn_length, switch_rate, …)
    turns: tuple[Turn, ...]

    @property
    def distinct_2(self) -> float:
        return self.style.distinct_2

    @property
    def avg_turn_length(self) -> float:
        return self.style.avg_turn_length

    def to_proto(self) -> common_pb2.FormatMetrics:
        return common_pb2.FormatMetrics(
            valid=self.valid, num_speakers=self.num_speakers, num_turns=self.num_turns,
            too_few_speakers="speakers" in self.codes, too_few_turns="turns" in self.codes, echo="echo" in self.codes,
            near_duplicate="near_duplicate" in self.codes, label_echo="label_echo" in self.codes,
            exact_repeat="exact_repeat" in self.codes, reasons=list(self.reasons))


def _ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def echoed_run(text: str, prompt: str, n: int = ECHO_RUN_WORDS) -> str | None:
    """The first run of `n` words of `text` that also occurs in `prompt`, or None (always None for no prompt)."""
    prompt_grams = _ngrams(tokens(prompt), n)
    if not prompt_grams:
        return None
    words = tokens(text)
    for i in range(len(words) - n + 1):
        if tuple(words[i : i + n]) in prompt_grams:
            return " ".join(words[i : i + n])
    return None


def repeated_line(turns: Sequence[Turn]) -> str | None:
    """The first turn (of ≥ 3 words) or sentence (of ≥ 6 words) that appears twice, or None."""
    seen_turns: set[tuple[str, ...]] = set()
    seen_sentences: Counter[tuple[str, ...]] = Counter()
    for turn in turns:
        words = tuple(tokens(turn.text))
        if len(words) >= MIN_REPEAT_TURN_WORDS:
            if words in seen_turns:
                return turn.text
            seen_turns.add(words)
        for sentence in _SENTENCE_END.split(turn.text):
            key = tuple(tokens(sentence))
            if len(key) >= REPEAT_SENTENCE_WORDS:
                seen_sentences[key] += 1
                if seen_sentences[key] == 2:
                    return sentence.strip()
    return None


def near_duplicate_turns(turns: Sequence[Turn]) -> tuple[str, str] | None:
    """The first two turns (≥ 6 words, not identical) whose word trigrams overlap by Jaccard ≥ 0.6, or None."""
    seen: list[tuple[set[tuple[str, ...]], str]] = []
    for turn in turns:
        words = tokens(turn.text)
        if len(words) < NEAR_DUPLICATE_MIN_WORDS:
            continue
        grams = _ngrams(words, 3)
        for earlier, text in seen:
            overlap = len(grams & earlier) / len(grams | earlier)
            if NEAR_DUPLICATE_JACCARD <= overlap < 1.0:
                return text, turn.text
        seen.append((grams, turn.text))
    return None


def echoed_label(turns: Sequence[Turn]) -> str | None:
    """The first speaker label written inside a turn's text ("Speaker 2:", "Host:", a name used as a label)."""
    names = sorted({t.speaker for t in turns if t.speaker}, key=len, reverse=True)
    alternatives = [_ROLE_LABEL, *(re.escape(n) for n in names)]
    label = re.compile(rf"(?:^|[\s*\[(\"“])((?:{'|'.join(alternatives)}))\s*[\])*]*\s*[:：]", re.IGNORECASE)
    for turn in turns:
        found = label.search(turn.text)
        if found:
            return found.group(1)
    return None


def check_format(text: str, prompt: str = "", known_speakers: Sequence[str] = ()) -> FormatCheck:
    """Check one dialogue's text against the prompt that produced it ("" for none: no echo check)."""
    turns = parse_turns(text, known_speakers)
    speakers = {normalise_name(t.speaker) for t in turns}
    found: list[tuple[str, str]] = []
    if len(speakers) < MIN_SPEAKERS:
        found.append(("speakers", f"{len(speakers)} speaker(s), fewer than {MIN_SPEAKERS}"))
    if len(turns) < MIN_TURNS:
        found.append(("turns", f"{len(turns)} turn(s), fewer than {MIN_TURNS}"))
    echoed = echoed_run(text, prompt)
    if echoed is not None:
        found.append(("echo", f'echoes the prompt: "{echoed}"'))
    repeated = repeated_line(turns)
    if repeated is not None:
        found.append(("exact_repeat", f'repeats a line: "{repeated[:80]}"'))
    near = near_duplicate_turns(turns)
    if near is not None:
        found.append(("near_duplicate", f'near-duplicate turns: "{near[0][:60]}" / "{near[1][:60]}"'))
    label = echoed_label(turns)
    if label is not None:
        found.append(("label_echo", f'a speaker label inside a turn: "{label}:"'))
    return FormatCheck(valid=not found, reasons=tuple(r for _, r in found), codes=tuple(c for c, _ in found),
                       num_speakers=len(speakers), num_turns=len(turns), echoed=echoed, repeated=repeated,
                       near_duplicate=near, label_echo=label, style=robust_style_of_turns(turns), turns=tuple(turns))
