"""Training pairs for a text-only model: real dialogue, cut along scenes, each scene described by one caption.

The paper pairs real podcast dialogue with images drawn from scene prompts. With no image model offline,
the scene's *caption* plays the image: a dialogue window of real turns is cut into consecutive scenes of
`turns_per_scene` turns, and each scene's caption is its most visual sentence (6–22 words, naming at least one
thing one can see, written in VIST's lower-case style). That sentence is taken out of the turn, so the model
learns to talk about what a caption shows without reciting it. The target is the generator's scene-by-scene format:

    [Scene 1]
    Speaker 1: …
    Speaker 2: …
    [Scene 2]
    …

Speakers (2 to 4) are relabelled "Speaker N" by order of appearance. Every window that cannot become a pair is
counted with its reason (`PairStats.rejected`); nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from vispod.dataset.scoring import VISUAL_WORDS, word_set

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'“])")
_WORD = re.compile(r"[A-Za-z']+")
_META = re.compile(r"\b(?:podcast|episode|listeners?|subscribe|speaker|host)\b", re.I)
_SPACES = re.compile(r"\s+")
_STOP = word_set("""
    that this with have what they them their there then than were been from your just like really know think
    about would could should because some very much when where which will also into even well only over make
    going yeah okay sure thing things good great right
""")
# "Alex: an upbeat host" personas, varied per pair so the model follows the request's names and roles.
PERSONAS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("Speaker 1", ""), ("Speaker 2", ""), ("Speaker 3", ""), ("Speaker 4", "")),
    (("Alex", "an upbeat host who loves stories"), ("Sam", "a thoughtful photographer"), ("Kim", "a guest"),
     ("Lee", "a guest")),
    (("Maya", "a curious host"), ("Jon", "a storyteller who was there"), ("Ana", "a friend of the family"),
     ("Ben", "a neighbour")),
    (("Lena", "the host"), ("Omar", "the guest"), ("Ivy", "the co-host"), ("Raj", "a second guest")),
)
MAX_SPEAKERS = 4

PromptFn = Callable[[Sequence[str], Sequence[tuple[str, str]], int], tuple[str, str]]
MarkerFn = Callable[[int, str], str]


@dataclass(frozen=True)
class SourceDialogue:
    source: str                                  # chitchat | sporc | paper-train
    dialogue_id: str
    turns: tuple[tuple[str, str], ...]           # (speaker as written, text), in order


@dataclass(frozen=True)
class ScenePair:
    pair_id: str
    source: str
    captions: tuple[str, ...]
    turns: tuple[tuple[int, int, str], ...]      # (scene index, speaker index, text)

    @property
    def words(self) -> int:
        return sum(len(t.split()) for _, _, t in self.turns)

    def target(self, marker: MarkerFn | None = None) -> str:
        """The dialogue in the generator's scene format; `marker(scene index, caption)` writes a scene's marker
        line (the generator's own, e.g. "[Scene 2: caption]"; by default "[Scene 2]")."""
        lines, scene = [], -1
        for s, speaker, text in self.turns:
            if s != scene:
                lines.append(marker(s, self.captions[s]) if marker else f"[Scene {s + 1}]")
                scene = s
            lines.append(f"Speaker {speaker + 1}: {text}")
        return "\n".join(lines)


@dataclass
class PairStats:
    dialogues: int = 0
    windows: int = 0
    pairs: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"dialogues": self.dialogues, "windows": self.windows, "pairs": self.pairs,
                "rejected_windows": dict(sorted(self.rejected.items()))}


def vist_style(sentence: str) -> str:
    """'We walked to the old pier at sunset.' -> 'we walked to the old pier at sunset .' (VIST's captions)."""
    s = _SPACES.sub(" ", sentence).strip().strip("\"'“”").rstrip(".!?").strip()
    return f"{s.lower()} ."


def _visual_score(sentence: str) -> tuple[int, int]:
    words = [w.lower() for w in _WORD.findall(sentence)]
    return sum(w in VISUAL_WORDS for w in words), -abs(len(words) - 12)


def content_words(text: str) -> set[str]:
    """Lower-case words of four letters or more, a plural's "s" dropped, stop words left out."""
    words = (w.lower().strip("'") for w in _WORD.findall(text))
    return {w[:-1] if w.endswith("s") and len(w) > 4 else w for w in words if len(w) >= 4 and w not in _STOP}


def scene_caption(texts: Sequence[str], min_left: int = 10, min_shared: int = 0) -> tuple[str, int, str] | None:
    """(caption, index of the turn it came from, that turn without the sentence), or None.

    With `min_shared`, the caption must share at least that many content words with the rest of the scene
    (the scene is *about* what its caption shows), and the sentences that share most are preferred."""
    candidates = []
    for i, text in enumerate(texts):
        sentences = _SENTENCE.split(text.strip())
        for j, sentence in enumerate(sentences):
            n = len(_WORD.findall(sentence))
            rest = " ".join(sentences[:j] + sentences[j + 1:])
            if 6 <= n <= 22 and not _META.search(sentence) and len(rest.split()) >= min_left \
                    and "?" not in sentence and _visual_score(sentence)[0] > 0:
                shared = 0
                if min_shared:
                    others = " ".join([rest, *(t for k, t in enumerate(texts) if k != i)])
                    shared = len(content_words(sentence) & content_words(others))
                    if shared < min_shared:
                        continue
                candidates.append(((min(shared, 3), *_visual_score(sentence)), -i, -j, sentence, i, rest))
    if not candidates:
        return None
    best = max(candidates, key=lambda c: c[:3])
    return vist_style(best[3]), best[4], best[5]


def clean_turn(text: str) -> str:
    return _SPACES.sub(" ", text.replace("**", "")).strip()


def pairs_from_dialogue(dialogue: SourceDialogue, *, scenes: int, turns_per_scene: int = 2, min_turn_words: int = 20,
                        max_turn_words: int = 140, max_pairs: int = 2, stats: PairStats | None = None,
                        keep_caption_sentence: bool = False, min_shared: int = 0,
                        captions: bool = True) -> list[ScenePair]:
    """Non-overlapping windows of `scenes * turns_per_scene` turns, no speaker twice in a row → pairs (at most
    `max_pairs`). The caption's sentence is taken out of its turn unless `keep_caption_sentence` (then the turn
    says what the scene's marker names, as people do when they talk about a photo). `min_shared`: see
    `scene_caption`. Without `captions` the scenes get no caption (their facts come from their words:
    vispod.dataset.scene_facts) and the turns stay whole."""
    stats = stats if stats is not None else PairStats()
    stats.dialogues += 1
    turns = [(sp, clean_turn(t)) for sp, t in dialogue.turns if clean_turn(t)]
    size = scenes * turns_per_scene
    out: list[ScenePair] = []
    start = 0
    while start + size <= len(turns) and len(out) < max_pairs:
        window = turns[start:start + size]
        stats.windows += 1
        reason = _window_rejection(window, min_turn_words, max_turn_words)
        if reason:
            stats.rejected[reason] += 1
            start += 1
            continue
        pair = _make_pair(dialogue, start, window, scenes, turns_per_scene, keep_caption_sentence, min_shared,
                          captions)
        if pair is None:
            stats.rejected["no_discussed_caption_sentence" if min_shared else "no_caption_sentence"] += 1
            start += 1
            continue
        out.append(pair)
        stats.pairs += 1
        start += size
    if not out and len(turns) < size:
        stats.rejected["dialogue_too_short"] += 1
    return out


def _window_rejection(window: list[tuple[str, str]], lo: int, hi: int) -> str | None:
    speakers = [sp for sp, _ in window]
    if any(a == b for a, b in pairwise(speakers)):
        return "same_speaker_twice"
    if not 2 <= len(set(speakers)) <= MAX_SPEAKERS:
        return "not_two_to_four_speakers"
    lengths = [len(t.split()) for _, t in window]
    if min(lengths) < lo:
        return "turn_too_short"
    if max(lengths) > hi:
        return "turn_too_long"
    return None


def _make_pair(dialogue: SourceDialogue, start: int, window: list[tuple[str, str]], scenes: int,
               turns_per_scene: int, keep_caption_sentence: bool = False, min_shared: int = 0,
               with_captions: bool = True) -> ScenePair | None:
    order = list(dict.fromkeys(sp for sp, _ in window))
    captions: list[str] = []
    turns: list[tuple[int, int, str]] = []
    for s in range(scenes):
        segment = window[s * turns_per_scene:(s + 1) * turns_per_scene]
        if not with_captions:
            captions.append("")
            turns += [(s, order.index(sp), text) for sp, text in segment]
            continue
        found = scene_caption([t for _, t in segment], min_shared=min_shared)
        if found is None:
            return None
        caption, idx, rest = found
        captions.append(caption)
        for k, (sp, text) in enumerate(segment):
            turns.append((s, order.index(sp), rest if k == idx and not keep_caption_sentence else text))
    pair_id = f"{dialogue.source}:{dialogue.dialogue_id}:{start}"
    return ScenePair(pair_id, dialogue.source, tuple(captions), tuple(turns))


def personas_for(pair: ScenePair) -> tuple[tuple[str, str], ...]:
    """The request's speakers for a pair: one of PERSONAS (chosen by the pair's id), as many as speak in it."""
    digest = hashlib.sha256(pair.pair_id.encode()).digest()
    n = len({speaker for _, speaker, _ in pair.turns})
    return PERSONAS[digest[0] % len(PERSONAS)][:n]


def write_pairs(out_dir: Path, pairs: Iterable[ScenePair], prompt_fn: PromptFn, card: dict[str, Any],
                marker: MarkerFn | None = None) -> dict[str, Any]:
    """pairs.jsonl (the trainer's format, no images: the captions are in the instruction) + manifest.json with the
    dataset's sha256 + data_card.json. Returns the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for pair in pairs:
        speakers = personas_for(pair)
        system, user = prompt_fn(pair.captions, speakers, pair.words)
        lines.append(json.dumps({"id": pair.pair_id, "source": pair.source, "image": [], "conversations": [
            {"from": "system", "value": system}, {"from": "human", "value": user},
            {"from": "gpt", "value": pair.target(marker)}]}, ensure_ascii=False))
    body = "\n".join(lines) + "\n"
    (out_dir / "pairs.jsonl").write_text(body, encoding="utf-8")
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    manifest = {"dataset_sha256": digest, "pairs": len(lines), **card}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    (out_dir / "data_card.json").write_text(json.dumps(card, indent=1), encoding="utf-8")
    return manifest
