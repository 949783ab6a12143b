"""How "visualizable" a dialogue excerpt is: could a few pictures show what the speakers talk about?

The default scorer is a transparent heuristic: the share of words that name things one can see
(places, objects, people, nature, colours, food, weather, actions) minus a penalty for podcast
housekeeping (ads, sponsors, subscribe) that no picture shows. `LLMScorer` asks any text→text
callable (e.g. one of the generator's backends) for a 0–10 rating instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

TextFn = Callable[[str], str]
F = TypeVar("F")


def word_set(block: str) -> frozenset[str]:
    return frozenset(block.split())


# Hand-picked, short and explicit on purpose: a reviewer can read the whole "model".
VISUAL_WORDS = word_set(
    """
    beach sea ocean lake river mountain mountains hill forest tree trees garden park field farm desert island
    sky sun sunset sunrise moon stars snow rain storm cloud clouds wind fog ice water waves sand rock rocks
    city street streets road bridge building buildings house home room kitchen bedroom office school church
    restaurant bar cafe shop store market mall stadium museum hospital airport station train bus car cars
    truck bike boat ship plane door window wall roof floor table chair bed couch desk stage lights light fire
    dog dogs cat cats horse bird birds fish cow animal animals flowers flower grass leaves red blue green
    yellow orange purple pink black white brown gold silver grey gray colorful bright dark dress shirt hat
    shoes jacket coat uniform costume glasses food pizza cake bread coffee tea beer wine dinner lunch
    breakfast meal plate cup bottle baby kids children kid family crowd people man woman girl boy friends
    wedding party parade concert festival game ball team football baseball basketball soccer player players
    field court camera picture photo painting book books phone computer guitar piano drum drums walk walked
    walking run running ran drive drove driving swim swimming climb climbed dance dancing sit sat stand stood
    hold holding wear wearing cook cooking eat eating build built paint painted
    """
)
OFF_SCENE_WORDS = word_set(
    """
    subscribe sponsor sponsored sponsors patreon promo code discount episode episodes podcast download rate
    review advertisement ads ad website newsletter link
    """
)
_WORD = re.compile(r"[a-z']+")


class VisualizabilityScorer(Protocol):
    name: str

    def score(self, text: str) -> float: ...


class HeuristicScorer:
    """Visual words per 100 words, minus twice the off-scene words per 100 words."""

    name = "heuristic-v1"

    def score(self, text: str) -> float:
        words = _WORD.findall(text.lower())
        if not words:
            return 0.0
        visual = sum(w in VISUAL_WORDS for w in words)
        off = sum(w in OFF_SCENE_WORDS for w in words)
        return 100.0 * (visual - 2 * off) / len(words)


LLM_SCORE_TEMPLATE = (
    "Rate from 0 to 10 how well five photographs could show what this podcast excerpt talks about "
    "(concrete places, people, objects and events score high; abstract talk, ads and housekeeping score low). "
    "Answer with the number only.\n\nExcerpt:\n{excerpt}\n\nRating:"
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class LLMWithFallback(Generic[F]):
    """Asks a text→text function through a template around an excerpt; a subclass turns to `fallback` (and
    counts it in `fallbacks`) when the reply is not usable."""

    def __init__(self, complete: TextFn, template: str, fallback: F) -> None:
        self.complete = complete
        self.template = template
        self.fallback = fallback
        self.fallbacks = 0

    def ask(self, excerpt: str) -> str:
        return self.complete(self.template.format(excerpt=excerpt)) or ""


class LLMScorer(LLMWithFallback[VisualizabilityScorer]):
    """Asks a text→text function for a 0–10 rating; falls back to the heuristic (counted) when unparsable."""

    name = "llm-v1"

    def __init__(
        self, complete: TextFn, template: str = LLM_SCORE_TEMPLATE, fallback: VisualizabilityScorer | None = None
    ):
        super().__init__(complete, template, fallback or HeuristicScorer())

    def score(self, text: str) -> float:
        reply = self.ask(text)
        match = _NUMBER.search(reply)
        if match:
            value = float(match.group())
            if 0.0 <= value <= 10.0:
                return value
        self.fallbacks += 1
        log.warning("visualizability: unparsable LLM rating %r; using %s", reply[:40], self.fallback.name)
        return self.fallback.score(text)
