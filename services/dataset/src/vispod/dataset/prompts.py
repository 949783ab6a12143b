"""Scene prompts (5 per excerpt, for the text-to-image model) and the training instruction text.

Every template carries a version string that the dataset manifest records, so a change of wording
is a change of dataset. The default writer is a key-phrase heuristic: the excerpt is cut into five
consecutive parts (the pictures follow the talk in order), and each part's most frequent content
phrases, visual words first, become one prompt. `LLMPromptWriter` asks any text→text callable for
five numbered prompts and falls back to the heuristic (counted) when the answer does not parse.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Protocol

from vispod.dataset.scoring import OFF_SCENE_WORDS, VISUAL_WORDS, LLMWithFallback, TextFn, word_set

log = logging.getLogger(__name__)

NUM_IMAGES = 5
PROMPT_TEMPLATE_VERSION = "scene-prompts-v1"
INSTRUCTION_VERSION = "instruction-v1"
SCENE_STYLE = "candid photograph, natural light, detailed"

INSTRUCTION = (
    "Write a natural, Q&A-style podcast conversation of about 800 words inspired by the visual content "
    'above, in the order shown. Label every turn with its speaker: "Speaker 1:", "Speaker 2:", and so on. '
    "Let the hosts talk about what happens, the places, the people and the objects as if they lived or "
    "heard the story; never mention images, pictures or photos."
)

STOPWORDS = word_set(
    """
    a about above after again against all also am an and any are aren't as at be because been before being
    below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down
    during each few for from further get gets got had hadn't has hasn't have haven't having he he'd he'll he's
    her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its
    itself just know let's like me more most mustn't my myself no nor not now of off on once only or other
    ought our ours ourselves out over own really right same say said see she she'd she'll she's should
    shouldn't so some such than that that's the their theirs them themselves then there there's these they
    they'd they'll they're they've thing things think this those through to too um uh under until up very was
    wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while who who's
    whom why why's will with won't would wouldn't yeah yes you you'd you'll you're you've your yours yourself
    yourselves okay oh well mean going go gonna kind sort lot lots much many one two actually maybe something
    anything everything somebody guess sure totally exactly speaker
    near still came went come comes put
    """
)
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'-]*")
_BREAKS = re.compile(r"[.,;:!?()\"\u2014]+")


class ScenePromptWriter(Protocol):
    name: str
    version: str

    def write(self, dialogue: str) -> list[str]: ...


def split_parts(text: str, parts: int = NUM_IMAGES) -> list[str]:
    """`parts` consecutive, near-equal slices of the text by words."""
    words = text.split()
    size, extra = divmod(len(words), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(" ".join(words[start:end]))
        start = end
    return out


def key_phrases(text: str, limit: int = 3) -> list[str]:
    """Runs of content words (RAKE-style), ranked by visual words, then frequency, then first position."""
    cleaned = re.sub(r"\bSpeaker \d+:", " . ", text)
    phrases: list[str] = []
    for chunk in _BREAKS.split(cleaned):  # punctuation ends a phrase as a stopword does
        current: list[str] = []
        for token in [*_TOKEN.findall(chunk), "."]:
            low = token.lower()
            if low in STOPWORDS or low in OFF_SCENE_WORDS or len(low) < 3:
                if current:
                    phrases.append(" ".join(current[-3:]))
                    current = []
            else:
                current.append(low)
    counts = Counter(phrases)
    first = {p: i for i, p in reversed(list(enumerate(phrases)))}

    def rank(p: str) -> tuple[int, int, int]:
        return (-sum(w in VISUAL_WORDS for w in p.split()), -counts[p], first[p])

    return sorted(counts, key=rank)[:limit]


class HeuristicPromptWriter:
    name = "heuristic"
    version = PROMPT_TEMPLATE_VERSION

    def write(self, dialogue: str) -> list[str]:
        prompts = []
        for part in split_parts(dialogue):
            phrases = key_phrases(part) or ["an everyday scene"]
            prompts.append(f"{', '.join(phrases)}, {SCENE_STYLE}")
        return prompts


LLM_PROMPT_TEMPLATE = (
    "Below is an excerpt of a podcast conversation. Write exactly 5 prompts for a text-to-image model, one "
    "per line, numbered 1. to 5., that show in order the scenes, places, people and objects the speakers talk "
    "about. Each prompt: one concrete visual description under 40 words, no text or captions in the image, "
    "no speaker names.\n\nExcerpt:\n{excerpt}\n\nPrompts:\n"
)
_NUMBERED = re.compile(r"^\s*(?:\d+[.)]|[-*])\s*(.+?)\s*$")


class LLMPromptWriter(LLMWithFallback[ScenePromptWriter]):
    """Asks a text→text function for five numbered prompts; falls back to the heuristic when it fails."""

    name = "llm"
    version = f"{PROMPT_TEMPLATE_VERSION}+llm"

    def __init__(
        self, complete: TextFn, template: str = LLM_PROMPT_TEMPLATE, fallback: ScenePromptWriter | None = None
    ):
        super().__init__(complete, template, fallback or HeuristicPromptWriter())

    def write(self, dialogue: str) -> list[str]:
        reply = self.ask(dialogue)
        prompts = [m.group(1) for m in map(_NUMBERED.match, reply.splitlines()) if m and m.group(1)]
        if len(prompts) >= NUM_IMAGES:
            return prompts[:NUM_IMAGES]
        self.fallbacks += 1
        log.warning("scene prompts: LLM gave %d usable prompts; using the heuristic", len(prompts))
        return self.fallback.write(dialogue)


def human_turn(num_images: int = NUM_IMAGES, instruction: str = INSTRUCTION) -> str:
    """The user message of a training pair: one <image> tag per picture, a newline, the instruction."""
    return "<image>" * num_images + "\n" + instruction
