"""Speaker turns as people and models actually write them.

Handles `Speaker 1:`, `**Host 1 (Alex):**`, `**Alex**:`, `[Jamie]:`, `Dr. Mary Ann Lee:`, `HOST:`, `SPEAKER_00:`,
`Élodie:`, `主持人：`, `राहुल:` (labels in any script, combining marks and decomposed accents included; the colon
ASCII, full-width, small or ratio: vispod.common.label_text), a label alone on its line with the words
on the next, titles (`**Podcast Transcript: "…"**`) and stage directions
(`**[Outro music fades in.]**`). `Host 1 (Alex)` and a later `Alex` are one speaker. Consecutive segments of one
speaker merge into one turn, so counting turns counts real changes of speaker.

A single capitalised word before a colon is a weak label: it counts when it recurs, names a known speaker, is an
alias of a stronger label, or stands beside other labels; common sentence openers ("Look:", "Note:") never count.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vispod.common.label_text import LABEL_COLONS, is_name_char, normalise_label_text
from vispod.metrics.language import count_words

UNKNOWN_SPEAKER = "unknown"


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words that name a role rather than a person; a number or letter may follow ("Speaker 2", "Guest A").
ROLE_WORDS = _wordset(
    "speaker host co-host cohost guest narrator interviewer interviewee moderator panelist panellist voice person "
    "caller participant presenter announcer reporter anchor"
)
HONORIFICS = _wordset("dr dr. mr mr. mrs mrs. ms ms. mx mx. prof prof. sir dame rev rev. fr fr. st st.")
# Lower-case particles inside names (Ludwig van Beethoven, Maria de la Cruz).
NAME_PARTICLES = _wordset("de da di du del della der den van von la le al el bin ibn y")
# Label words that mark a title, section or direction, never a speaker.
NON_SPEAKER_WORDS = _wordset(
    "podcast transcript episode title intro introduction outro music sound sfx note notes scene segment part chapter "
    "summary end theme setting ad sponsor break act show topic description timestamp image photo picture caption "
    "question answer update edit warning ps tl;dr tldr ok okay yes no so well but and now look listen wait here this "
    "that the exactly honestly seriously absolutely right true sure yeah yep nope anyway first second third finally "
    "also plus remember imagine think reminder lesson rule fact truth point bottom spoiler hint tip step bonus result "
    "verdict conclusion context background quote translation"
)

_TIMESTAMP = re.compile(r"^\[?\(?\d{1,2}:\d{2}(?::\d{2})?\)?\]?\s*")
_STAGE_LINE = re.compile(r"^[*_\s]*[\[(][^\])]*[\])][*_\s.]*$")
_INLINE_DIRECTION = re.compile(r"\[[^\]]{0,80}\]")
_LABEL_PUNCT = frozenset("_'’.-")
_PAREN = re.compile(r"^(?P<name>[^()]*?)\s*\((?P<inner>[^()]*)\)\s*$")
_MAX_LABEL_CHARS = 48
_MAX_LABEL_TOKENS = 5
_LABEL_SEARCH_CHARS = 72


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str

    @property
    def words(self) -> int:
        return count_words(self.text)


@dataclass(frozen=True)
class _Label:
    key: str  # canonical speaker id (lower case)
    display: str
    alias: str | None  # e.g. "host 1" for "Host 1 (Alex)"
    strong: bool


@dataclass(frozen=True)
class _Line:
    label: _Label | None
    text: str
    stage: bool = False


def normalise_name(name: str) -> str:
    """Case-, space- and punctuation-insensitive key: 'Speaker1', 'SPEAKER 1', 'speaker_1' -> 'speaker 1'."""
    name = normalise_label_text(name).replace("_", " ").replace("’", "'")
    name = re.sub(r"(?<=[^\W\d_])(?=\d)", " ", name)
    return re.sub(r"\s+", " ", name).strip(" .").lower()


def _label_token_ok(tok: str) -> bool:
    """A capitalised word in any script ('Alex', 'Élodie', 'O'Neil'), or one in a script without case ('主持人',
    'राहुल', 'สมชาย': letters with combining marks)."""
    first = tok[0]
    if not first.isalpha() or first.islower():
        return False
    return all(is_name_char(c) or c in _LABEL_PUNCT for c in tok[1:])


def _name_tokens_ok(tokens: Sequence[str]) -> bool:
    if not 1 <= len(tokens) <= _MAX_LABEL_TOKENS:
        return False
    for i, tok in enumerate(tokens):
        low = tok.lower()
        if low in HONORIFICS and i < len(tokens) - 1:
            continue
        if tok.isdigit() or (len(tok) == 1 and tok.isupper()):
            # "Speaker 2", "Guest A": a number or letter only after a role word (rules out "At 10:30").
            if i == 0 and len(tokens) == 1 and tok.isupper():
                continue  # "A:", "B:" dialogue labels
            if i > 0 and tokens[i - 1].lower() in ROLE_WORDS:
                continue
            return False
        if low in NAME_PARTICLES and 0 < i < len(tokens) - 1:
            continue
        if not _label_token_ok(tok):
            return False
    return not any(t.lower().strip(".") in NON_SPEAKER_WORDS for t in tokens)


def _parse_label(raw: str, formatted: bool) -> _Label | None:
    """A speaker label from the text before a colon, or None if it is not one."""
    raw = raw.strip()
    if not raw or len(raw) > _MAX_LABEL_CHARS:
        return None
    alias: str | None = None
    name = raw
    paren = _PAREN.match(raw)
    if paren:
        outer, inner = paren.group("name").strip(), paren.group("inner").strip()
        inner_tokens = inner.split()
        if inner and _name_tokens_ok(inner_tokens) and _name_tokens_ok(outer.split()):
            # "Host 1 (Alex)": the person is Alex, and "Host 1" means Alex from now on.
            name, alias = inner, normalise_name(outer)
        elif outer:
            name = outer  # "Alex (laughing)": a direction, not a name
        else:
            return None
    tokens = name.split()
    if not _name_tokens_ok(tokens):
        return None
    key = normalise_name(name)
    first = tokens[0].lower()
    strong = (
        formatted
        or alias is not None
        or first in ROLE_WORDS
        or first in HONORIFICS
        or len(tokens) >= 2
        or (len(tokens[0]) >= 2 and tokens[0].isupper())
    )
    return _Label(key=key, display=name, alias=alias, strong=strong)


def _split_line(line: str) -> _Line:
    """Classify one stripped, non-empty line: labelled speech, unlabelled speech, or a stage direction."""
    line = _TIMESTAMP.sub("", line.lstrip("> ").strip())
    if not line:
        return _Line(None, "", stage=True)
    if _STAGE_LINE.match(line):
        return _Line(None, "", stage=True)
    colon = min((i for i in (line.find(c, 0, _LABEL_SEARCH_CHARS) for c in LABEL_COLONS) if i >= 0), default=-1)
    if colon > 0:
        head = line[:colon]
        formatted = head.lstrip().startswith(("**", "__", "[")) or head.rstrip().endswith(("**", "__", "]"))
        label = _parse_label(head.replace("*", "").replace("_", " ").replace("[", "").replace("]", ""), formatted)
        if label is not None:
            rest = line[colon + 1 :].lstrip("*_ \t")
            return _Line(label, rest)
    return _Line(None, line)


def clean_speech(text: str) -> str:
    """Speech without bracketed directions and markdown emphasis."""
    text = _INLINE_DIRECTION.sub(" ", text)
    text = text.replace("*", "").replace("__", "")
    return re.sub(r"\s+", " ", text).strip()


def parse_turns(text: str, known_speakers: Iterable[str] = ()) -> list[Turn]:
    """Merged speaker turns of a transcript; one `unknown` turn when it carries no labels at all."""
    lines = [_split_line(s.strip()) for s in normalise_label_text(text).splitlines() if s.strip()]
    known = {normalise_name(s) for s in known_speakers if s.strip()}
    counts = Counter(ln.label.key for ln in lines if ln.label)
    aliases = {ln.label.alias: ln.label.key for ln in lines if ln.label and ln.label.alias and ln.label.strong}
    strong_keys = {ln.label.key for ln in lines if ln.label and ln.label.strong}

    confident = {key for key in counts if key in strong_keys or key in known or key in aliases or counts[key] >= 2}

    def accepted(label: _Label) -> bool:
        # A one-off weak label counts only beside other labels (a dialogue), never alone ("Note: …").
        return label.key in confident or len(counts) >= 2

    display: dict[str, str] = {}
    segments: list[tuple[str, list[str]]] = []
    for ln in lines:
        if ln.stage:
            continue
        if ln.label is not None and accepted(ln.label):
            key = aliases.get(ln.label.key, ln.label.key)
            display.setdefault(key, ln.label.display)
            segments.append((key, [ln.text]))
        elif segments:
            segments[-1][1].append(ln.text)
        # lines before the first label: a title or preamble, not speech

    if not segments:
        body = clean_speech(" ".join(ln.text for ln in lines if not ln.stage))
        return [Turn(UNKNOWN_SPEAKER, body)] if body else []
    return merge_turns((display.get(key, key), clean_speech(" ".join(parts))) for key, parts in segments)


def merge_turns(turns: Iterable[tuple[str, str]]) -> list[Turn]:
    """Drop empty turns and join consecutive turns of the same speaker (compared by normalised name)."""
    merged: list[Turn] = []
    for speaker, text in turns:
        text = text.strip()
        if not text:
            continue
        if merged and normalise_name(merged[-1].speaker) == normalise_name(speaker):
            merged[-1] = Turn(merged[-1].speaker, f"{merged[-1].text} {text}")
        else:
            merged.append(Turn(speaker.strip() or UNKNOWN_SPEAKER, text))
    return merged
