"""A worked example before the request, for base models (setting `few_shot`).

A pretrained model continues patterns more than it follows instructions, so it first sees one finished example of
the same task: the scenes of a short invented story as a model reads them (perception's facts, or captions), then
the conversation about them written along the same plan — scene markers, speaker labels and cues exactly as
scene_plan writes them (labels only under the "whole" plan). The stories and turns are invented for this purpose
(prompts/<version>/few_shot_facts.txt, few_shot_captions.txt), not taken from any dataset or evaluation story.

The example is part of the prompt only; the parser reads what the model generates, never the prompt, so the
example's markers and turns never enter a dialogue. Its turns' words are the pattern, not the content: with
`no_repeat_ngram` the model may not copy a run of that many tokens of them (`example_turns`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from string import Template

from vispod.generator.prompting import prompt_file, scene_list, speaker_label
from vispod.generator.scene_plan import MIN_TURNS, scene_steps

EXAMPLE_SPEAKERS = 2


@dataclass(frozen=True)
class ExampleScene:
    text: str                  # what the model reads about the photo
    turns: tuple[str, ...]     # each turn's words (a scene's first turn continues the plan's cue)


@cache
def example_scenes(version: str, facts: bool) -> tuple[ExampleScene, ...]:
    """The example story of prompt `version`: "scene: <text>" lines, each followed by its "turn: <words>" lines."""
    name = "few_shot_facts.txt" if facts else "few_shot_captions.txt"
    scenes: list[tuple[str, list[str]]] = []
    for number, line in enumerate(prompt_file(version, name).splitlines(), 1):
        key, _, value = line.partition(":")
        if not line.strip():
            continue
        if key == "scene" and value.strip():
            scenes.append((value.strip(), []))
        elif key == "turn" and value.strip() and scenes:
            scenes[-1][1].append(value.strip())
        else:
            raise ValueError(f"prompt {version}/{name} line {number}: expected 'scene: …' or 'turn: …' after a scene")
    counts = {len(turns) for _, turns in scenes}
    if not scenes or len(counts) != 1 or 0 in counts or len(scenes) * counts.pop() < MIN_TURNS:
        raise ValueError(f"prompt {version}/{name}: every scene needs the same number of turns, "
                         f"{MIN_TURNS} turns in all at least")
    return tuple(ExampleScene(text, tuple(turns)) for text, turns in scenes)


def example_turns(version: str, facts: bool) -> tuple[str, ...]:
    """The example's turns, each as the model reads it after its label (or cue)."""
    return tuple(turn for scene in example_scenes(version, facts) for turn in scene.turns)


def worked_example(*, version: str, facts: bool, plan: str) -> str:
    """The example as the prompt shows it: its scene list, then its conversation along `plan` (scenes | whole)."""
    scenes = example_scenes(version, facts)
    texts = [s.text for s in scenes]
    turns = example_turns(version, facts)
    if plan == "scenes":
        steps = scene_steps(num_scenes=len(scenes), num_speakers=EXAMPLE_SPEAKERS,
                            turns_per_scene=len(scenes[0].turns), target_words=len(" ".join(turns).split()),
                            captions=texts)
        dialogue = "\n".join(f"{step.text} {turn}" for step, turn in zip(steps, turns, strict=True))
    else:
        dialogue = "\n".join(f"{speaker_label(k % EXAMPLE_SPEAKERS)}: {turn[0].upper()}{turn[1:]}"
                             for k, turn in enumerate(turns))
    return Template(prompt_file(version, "few_shot.txt")).substitute(
        scenes=scene_list(texts, version=version, facts=facts, plan=plan).strip(), dialogue=dialogue).strip()
