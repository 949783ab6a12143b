"""Model output → structured turns: parsing, sound repairs, and detection of malformed output.

Labels. A line starts a turn when, after stripping list markers and markdown emphasis
(`**Speaker 1:**`, `- [Host 2]:`), it begins with a label and a colon. Labels may be in any script: letters
with combining marks (Hindi, Bengali, Tamil, Thai names; accents typed apart, which NFC joins) and the colon
variants of vispod.common.label_text count. A label resolves to a
requested speaker when it is (case-insensitively) one of their names or first names, the name in
parentheses of `Host 1 (Alex)`, or `Speaker|Host|Guest N` with N ≤ the number of speakers (so
"Speaker 2" maps to the 2nd requested name). Other labels made of 1–3 capitalised words (or
`Speaker 7`) are *unknown speakers*; any other "words:" line is ordinary text.

Repairs (each recorded as a warning): labels normalised to the requested names; text before the
first label (titles, "Here is the podcast:") dropped; lines that are only a stage direction
(`[laughs]`, `(music fades)`) dropped; consecutive turns of one speaker merged; when no
requested label was used at all and the model invented exactly as many distinct names as there
are speakers, those names are mapped to the speakers in order of first appearance; when the token
limit cut the output, an unfinished last turn (no closing punctuation) is dropped.

Malformed (→ one retry, then a FAILED result): no labels at all, unknown speakers that no sound
repair explains, only one speaker, or nothing usable left after truncation.

Images referred to (Turn.image_refs, 0-based): under a "[Scene N]" marker (the scene plan's), exactly
that scene. Otherwise (a dialogue written in one go) explicit mentions ("the third scene", "photo 2",
"the last picture"), plus caption keywords — a turn refers to image i when it shares at least
two content words (4+ letters, not stop words, plural "s" stripped) with caption i, or all of
them when the caption has fewer than two. A heuristic for analysis, not ground truth.

Streaming: `feed()` returns turns as soon as the next speaker's label line is complete; a turn
is never changed after it was returned. Turns with unknown labels (and all after them) are held
back until `finish()`, which returns the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from vispod.common.label_text import LABEL_COLONS, is_mark, is_name_char, normalise_label_text
from vispod.v1 import common_pb2

_LABEL_LINE = re.compile(
    r"^\s*(?:[-*>•]\s+)?[*_\[]*\s*"
    r"(?P<label>[^\W\d_][\w .'’\-]{0,38}?(?:\s*#?\s*\d{1,2})?(?:\s*\([^()\n]{1,40}\))?)"
    r"\s*[*_\]]*\s*:\s*[*_]*\s*(?P<rest>.*)$"
)
_GENERIC = re.compile(r"(?:speaker|host|guest|co-?host|person|voice|narrator)\s*#?\s*(\d{1,2})", re.I)
_PAREN = re.compile(r"^(?P<base>.*?)\s*\((?P<inner>[^()]+)\)\s*$")
_STAGE = re.compile(r"^\s*(?:\[[^\]]*\]|\([^)]*\)|\*[^*]+\*)\s*$")
_END_PUNCT = re.compile(r"[.!?…\"'”’)]\s*$")
# "[Scene 3]": the scene-by-scene plan's marker; the turns after it discuss that image.
SCENE_MARKER = re.compile(r"^\s*\[\s*scene\s+(\d{1,2})\s*(?::[^\]]*)?\]\s*$", re.I)   # "[Scene 2]", "[Scene 2: …]"

_ORDINALS = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "sixth": 5, "seventh": 6,
             "eighth": 7, "ninth": 8, "tenth": 9, "1st": 0, "2nd": 1, "3rd": 2, "4th": 3, "5th": 4}
_NUMBERS = {"one": 0, "two": 1, "three": 2, "four": 3, "five": 4, "six": 5, "seven": 6, "eight": 7, "nine": 8,
            "ten": 9}
_VISUAL_NOUN = r"(?:scenes?|photos?|photographs?|pictures?|images?|shots?|snapshots?|frames?|pics?)"
_ORDINAL_MENTION = re.compile(rf"\b(?P<ord>{'|'.join(_ORDINALS)}|last|final)\s+(?:\w+\s+)?{_VISUAL_NOUN}\b", re.I)
_NUMBER_MENTION = re.compile(rf"\b{_VISUAL_NOUN}\s*(?:#|no\.?|number)?\s*(?P<num>\d{{1,2}}|{'|'.join(_NUMBERS)})\b",
                             re.I)
_STOP = frozenset(re.findall(r"\S+", """
about above after again against also among around back because been before being below between both
came come could does doing down during each even ever every from further have having here into just
like made make many more most much must near only other over really same some such than that their
them then there these they this those though through under until very want were what when where
which while will with would your youre thats theres its it's into onto upon look looked looks
looking seem seemed seems
"""))
_WORD = re.compile(r"[a-z]+")


def _for_matching(line: str) -> str:
    """The line with each combining mark as a letter and each colon variant as ':', one character for one, so
    the label pattern sees names in every script and its spans still index the line."""
    return "".join("a" if is_mark(c) else ":" if c in LABEL_COLONS else c for c in line)


def _name_like(label: str) -> bool:
    """1-3 words, each starting with a capital or a caseless letter (scripts without case)."""
    words = label.split()
    if not 1 <= len(words) <= 3 or len(label) > 30:
        return False
    for w in words:
        if not (w[0].isalpha() and (w[0].isupper() or w[0].lower() == w[0].upper())):
            return False
        if not all(is_name_char(c) or c in "'’-_" for c in w[1:]):
            return False
    return True


def _keywords(text: str) -> set[str]:
    words = set()
    for w in _WORD.findall(text.lower()):
        if len(w) >= 4 and w not in _STOP:
            words.add(w[:-1] if w.endswith("s") and not w.endswith("ss") else w)
    return words


class ImageMatcher:
    """Which images (0-based, story order) a turn refers to; see the module docstring."""

    def __init__(self, captions: Sequence[str], num_images: int) -> None:
        self.num_images = num_images
        self.caption_words = [_keywords(c) for c in captions]

    def refs(self, text: str) -> list[int]:
        found: set[int] = set()
        for m in _ORDINAL_MENTION.finditer(text):
            o = m.group("ord").lower()
            found.add(self.num_images - 1 if o in ("last", "final") else _ORDINALS[o])
        for m in _NUMBER_MENTION.finditer(text):
            n = m.group("num").lower()
            found.add(int(n) - 1 if n.isdigit() else _NUMBERS[n])
        words = _keywords(text)
        for i, cw in enumerate(self.caption_words):
            if cw and len(words & cw) >= min(2, len(cw)):
                found.add(i)
        return sorted(i for i in found if 0 <= i < self.num_images)


@dataclass
class _Turn:
    speaker: int            # index into the requested speakers; -1 = unknown label
    label: str              # the label as written (for unknown ones)
    lines: list[str] = field(default_factory=list)
    scene: int | None = None  # 0-based image of the scene marker above the turn

    @property
    def text(self) -> str:
        return " ".join(x for x in self.lines if x).strip()


@dataclass
class ParseResult:
    turns: list[common_pb2.Turn]
    warnings: list[str]
    error: str = ""          # non-empty: the output is malformed (the reason)
    pending: list[common_pb2.Turn] = field(default_factory=list)  # turns feed() had not returned yet

    @property
    def ok(self) -> bool:
        return not self.error


class TranscriptParser:
    def __init__(self, speaker_names: Sequence[str], captions: Sequence[str] = (), num_images: int = 0) -> None:
        self.names = list(speaker_names)
        self._by_name: dict[str, int] = {}
        keys = [normalise_label_text(n) for n in self.names]
        for i, name in enumerate(keys):
            self._by_name.setdefault(name.lower(), i)
        for i, name in enumerate(keys):  # first names, where unambiguous
            first = name.split()[0].lower() if name.split() else ""
            if first and sum(1 for n in keys if n.split() and n.split()[0].lower() == first) == 1:
                self._by_name.setdefault(first, i)
        self.matcher = ImageMatcher(captions, num_images or len(captions))
        self._buffer = ""
        self._turns: list[_Turn] = []
        self._emitted = 0
        self._hold = False           # an unknown label was seen: hold every later turn until finish()
        self._preamble = 0
        self._stage = 0
        self._merged = 0
        self._scene: int | None = None

    # --- labels ------------------------------------------------------------------------------
    def _resolve(self, label: str) -> int | None:
        """Speaker index, -1 for an unknown speaker label, None when `label` is no label at all."""
        label = re.sub(r"[*_\[\]]", "", label).strip()
        candidates = [label]
        m = _PAREN.match(label)
        if m:
            candidates = [m.group("inner").strip(), m.group("base").strip()]
        for cand in candidates:
            idx = self._by_name.get(cand.lower())
            if idx is not None:
                return idx
        for cand in candidates:
            g = _GENERIC.fullmatch(cand)
            if g:
                n = int(g.group(1))
                return n - 1 if 1 <= n <= len(self.names) else -1
        if _name_like(candidates[-1]):
            return -1
        return None

    # --- streaming ---------------------------------------------------------------------------
    def feed(self, chunk: str) -> list[common_pb2.Turn]:
        """Adds model output; returns the turns that became complete."""
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._line(line)
        return self._drain(final=False)

    def _line(self, raw: str) -> None:
        line = normalise_label_text(raw.strip())
        if not line:
            return
        scene = SCENE_MARKER.match(line)
        if scene:
            self._scene = int(scene.group(1)) - 1
            return
        m = _LABEL_LINE.match(_for_matching(line))
        label = line[m.start("label"):m.end("label")] if m else ""
        idx = self._resolve(label) if m else None
        if idx is not None and m is not None:
            rest = line[m.start("rest"):].strip()
            current = self._turns[-1] if self._turns else None
            if current is not None and idx >= 0 and current.speaker == idx:
                self._merged += 1
                current.lines.append(rest)
                return
            if idx < 0:
                self._hold = True
            self._turns.append(_Turn(idx, re.sub(r"[*_\[\]]", "", label).strip(), [rest], self._scene))
            return
        if _STAGE.match(line):
            self._stage += 1
            return
        if not self._turns:
            self._preamble += 1
            return
        self._turns[-1].lines.append(line)

    def _to_proto(self, t: _Turn) -> common_pb2.Turn:
        text = t.text
        planned = t.scene is not None and 0 <= t.scene < self.matcher.num_images
        # Planned: the scene marker alone says which photo the turn is about.
        refs = [t.scene] if planned else self.matcher.refs(text)
        return common_pb2.Turn(speaker=self.names[t.speaker], text=text, image_refs=refs)

    def _drain(self, final: bool) -> list[common_pb2.Turn]:
        if self._hold and not final:
            return []
        # The last turn may still grow until the next label (or the end) arrives.
        ready = len(self._turns) if final else len(self._turns) - 1
        out = []
        while self._emitted < ready:
            t = self._turns[self._emitted]
            self._emitted += 1
            if t.text:
                out.append(self._to_proto(t))
        return out

    def finish(self, truncated: bool = False) -> ParseResult:
        """Ends the output. truncated: generation stopped at the token limit."""
        if self._buffer:
            self._line(self._buffer)
            self._buffer = ""
        warnings: list[str] = []
        if self._preamble:
            warnings.append(f"dropped {self._preamble} line(s) before the first speaker label")
        if self._stage:
            warnings.append(f"dropped {self._stage} stage-direction line(s)")
        if self._merged:
            warnings.append(f"merged {self._merged} consecutive turn(s) of the same speaker")
        turns = [t for t in self._turns if t.text]
        if not turns:
            return ParseResult([], warnings, "no speaker labels found (expected lines like 'Speaker 1: ...')")
        unknown = [t for t in turns if t.speaker < 0]
        if unknown:
            err = self._remap_invented(turns, warnings)
            if err:
                return ParseResult([], warnings, err)
            turns = self._merge(turns)
        if truncated:
            last = turns[-1]
            if _END_PUNCT.search(last.text):
                warnings.append("output reached the token limit at a turn boundary")
            else:
                turns = turns[:-1]
                warnings.append("dropped the unfinished last turn (output hit the token limit)")
                if self._emitted > len(turns):  # it had been streamed: cannot be taken back
                    return ParseResult([], warnings, "truncated: the streamed last turn was unfinished")
        spoke = {t.speaker for t in turns}
        if not turns:
            return ParseResult([], warnings, "truncated: no complete turn before the token limit")
        if len(spoke) < 2:
            who = self.names[next(iter(spoke))]
            return ParseResult([], warnings, f"only one speaker ({who}) spoke" + (" before the token limit"
                                                                                 if truncated else ""))
        silent = [self.names[i] for i in range(len(self.names)) if i not in spoke]
        if silent:
            warnings.append(f"speaker(s) who never spoke: {', '.join(silent)}")
        protos = [self._to_proto(t) for t in turns]
        already = min(self._emitted, len(protos)) if not unknown else 0
        return ParseResult(protos, warnings, "", pending=protos[already:])

    def _remap_invented(self, turns: list[_Turn], warnings: list[str]) -> str:
        """Maps invented names onto the speakers by first appearance when that is unambiguous; else an error."""
        invented = list(dict.fromkeys(t.label for t in turns if t.speaker < 0))
        known_used = any(t.speaker >= 0 for t in turns)
        if known_used or len(invented) != len(self.names):
            return f"unknown speaker label(s): {', '.join(invented[:5])}"
        mapping = {label: i for i, label in enumerate(invented)}
        for t in turns:
            t.speaker = mapping[t.label]
        warnings.append("mapped invented labels to speakers by order of appearance: "
                        + ", ".join(f"{label} → {self.names[i]}" for label, i in mapping.items()))
        return ""

    @staticmethod
    def _merge(turns: list[_Turn]) -> list[_Turn]:
        out: list[_Turn] = []
        for t in turns:
            if out and out[-1].speaker == t.speaker:
                out[-1].lines.extend(t.lines)
            else:
                out.append(t)
        return out


def parse_transcript(text: str, speaker_names: Sequence[str], captions: Sequence[str] = (),
                     truncated: bool = False, num_images: int = 0) -> ParseResult:
    parser = TranscriptParser(speaker_names, captions, num_images)
    parser.feed(text)
    return parser.finish(truncated=truncated)


def render(turns: Sequence[common_pb2.Turn]) -> str:
    """The transcript as "Name: text" lines, one blank line between turns."""
    return "\n\n".join(f"{t.speaker}: {t.text}" for t in turns)
