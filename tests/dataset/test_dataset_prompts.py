"""Visualizability scoring, scene prompts and the training instruction."""

from __future__ import annotations

from vispod.dataset.prompts import (
    INSTRUCTION,
    NUM_IMAGES,
    HeuristicPromptWriter,
    LLMPromptWriter,
    human_turn,
    key_phrases,
    split_parts,
)
from vispod.dataset.scoring import HeuristicScorer, LLMScorer

SCENIC = (
    "Speaker 1: We drove to the beach at sunset and the sky was orange over the water.\n\n"
    "Speaker 2: Was the old red boat still there by the rocks? The kids loved that boat.\n\n"
    "Speaker 1: It was, and we had pizza on a wooden table in the garden of a small cafe near the station.\n\n"
    "Speaker 2: Then the storm came in, rain on the windows, and we watched the waves from the kitchen."
)
HOUSEKEEPING = (
    "Speaker 1: Before we start, this episode is sponsored by our friends, use the promo code for a discount.\n\n"
    "Speaker 2: And please subscribe, rate and review the podcast, and join the newsletter on the website."
)


def test_heuristic_scorer_prefers_scenes_to_housekeeping() -> None:
    scorer = HeuristicScorer()
    assert scorer.score(SCENIC) > 10 > 0 > scorer.score(HOUSEKEEPING)
    assert scorer.score("") == 0.0


def test_llm_scorer_parses_a_rating_and_falls_back() -> None:
    seen: list[str] = []

    def complete(prompt: str) -> str:
        seen.append(prompt)
        return "Rating: 7.5" if len(seen) == 1 else "I cannot rate this."

    scorer = LLMScorer(complete)
    assert scorer.score(SCENIC) == 7.5
    assert SCENIC in seen[0]
    assert scorer.score(SCENIC) == HeuristicScorer().score(SCENIC)
    assert scorer.fallbacks == 1


def test_heuristic_prompts_are_five_ordered_and_deterministic() -> None:
    writer = HeuristicPromptWriter()
    prompts = writer.write(SCENIC)
    assert len(prompts) == NUM_IMAGES and prompts == writer.write(SCENIC)
    assert all(p.strip() and "speaker" not in p.lower() for p in prompts)
    assert "beach" in prompts[0] and "storm" in prompts[-1]  # the pictures follow the talk in order
    assert " ".join(split_parts(SCENIC)) == " ".join(SCENIC.split())
    assert key_phrases("the the the") == []


def test_llm_prompt_writer_uses_numbered_lines_or_falls_back() -> None:
    good = "\n".join(f"{i}. a scene number {i}" for i in range(1, 7))
    writer = LLMPromptWriter(lambda _p: good)
    assert writer.write(SCENIC) == [f"a scene number {i}" for i in range(1, 6)]
    bad = LLMPromptWriter(lambda _p: "1. only one")
    assert bad.write(SCENIC) == HeuristicPromptWriter().write(SCENIC) and bad.fallbacks == 1


def test_human_turn_has_one_image_tag_per_picture() -> None:
    value = human_turn()
    assert value.startswith("<image>" * 5 + "\n") and value.count("<image>") == 5
    assert value.endswith(INSTRUCTION) and "Speaker 1:" in INSTRUCTION
