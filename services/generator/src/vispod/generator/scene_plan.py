"""The scene-by-scene plan: the dialogue is written along the photos, structure given, words the model's.

For each scene, in story order, a "[Scene N: its caption]" marker line ("[Scene N]" without captions), then
`turns_per_scene` turns whose speaker labels are given in turn (Speaker 1, Speaker 2, …); the model writes each
turn's words as one line. A scene's first turn opens with a short cue to the photo ("The next photo shows"), so
that every model starts the scene on what the photo shows and goes on in its own words.
Short stories get extra turns on their last scene so that every dialogue has at least `MIN_TURNS`.
Turn length follows the requested words, counted in words of the text each turn's model wrote (not in tokens, so
models with different tokenizers get turns of the same length): the end of a line is not allowed before `min`
words, the turn ends at the first sentence end after `soft` words, and at `max` words in any case.

The same plan (markers, labels, limits) is applied to every model, so differences between models are
differences in the words they write. Markers are not part of the dialogue: the parser uses them to know
which image a turn discusses and drops them.
"""

from __future__ import annotations

from collections.abc import Sequence

from vispod.generator.backends.base import Step
from vispod.generator.prompting import speaker_label

MIN_TURNS = 6
MAX_MARKER_CAPTION = 240
# A turn is one line; the model may not write a "[Scene N]" marker of its own inside it (the plan writes those).
FORBIDDEN_IN_TURN = ("[",)
# Only a safety bound on a turn's tokens (a model writing no spaces): the word limits decide a turn's length.
MAX_TOKENS_PER_WORD = 4
# Cues that open a scene's first turn: the first, the middle ones (in rotation) and the last scene's.
FIRST_CUE, LAST_CUE, ONLY_CUE = "This first photo shows", "And the last photo shows", "This photo shows"
MIDDLE_CUES = ("The next photo shows", "Then this picture shows", "In the next one we see")


def turn_budget(target_words: int, n_turns: int) -> tuple[int, int, int]:
    """(min, soft, max) words per turn: the requested words shared out, 20 to 150 a turn."""
    words = min(150.0, max(20.0, target_words / max(1, n_turns)))
    return int(words * 0.4), int(words * 1.1), int(words * 1.8) + 6


def scene_marker(index: int, caption: str = "") -> str:
    """"[Scene N]", or "[Scene N: caption]" when the scene's caption is known (text mode): the words the model
    is about to discuss stand right before its turns, not only in the prompt's list."""
    caption = " ".join(caption.replace("[", "(").replace("]", ")").split())[:MAX_MARKER_CAPTION]
    return f"[Scene {index + 1}: {caption}]" if caption else f"[Scene {index + 1}]"


def scene_cue(index: int, num_scenes: int) -> str:
    if num_scenes == 1:
        return ONLY_CUE
    if index == 0:
        return FIRST_CUE
    if index == num_scenes - 1:
        return LAST_CUE
    return MIDDLE_CUES[(index - 1) % len(MIDDLE_CUES)]


def scene_steps(*, num_scenes: int, num_speakers: int, turns_per_scene: int, target_words: int,
                captions: Sequence[str] = ()) -> list[Step]:
    per_scene = [turns_per_scene] * num_scenes
    shortfall = MIN_TURNS - sum(per_scene)
    if shortfall > 0:
        per_scene[-1] += shortfall
    lo, soft, hi = turn_budget(target_words, sum(per_scene))
    steps, k = [], 0
    for scene, n_turns in enumerate(per_scene):
        for t in range(n_turns):
            caption = captions[scene] if scene < len(captions) else ""
            opening = f"{scene_marker(scene, caption)}\n" if t == 0 else ""
            cue = f" {scene_cue(scene, num_scenes)}" if t == 0 else ""
            steps.append(Step(text=f"{opening}{speaker_label(k % num_speakers)}:{cue}",
                              max_new_tokens=hi * MAX_TOKENS_PER_WORD, min_words=lo, soft_words=soft, max_words=hi,
                              stop=("\n",), forbid=FORBIDDEN_IN_TURN, new_line=True))
            k += 1
    return steps
