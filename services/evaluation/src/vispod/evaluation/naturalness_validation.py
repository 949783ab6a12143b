"""Validate each naturalness measure (vispod.metrics.naturalness) on the paper's own transcripts before any
decision uses it.

    python -m vispod.evaluation.naturalness_validation [--stories N] [--out FILE]

On every vist-podcast-50 story (VISPOD_DATASETS_ROOT) with both published transcripts:
1. *the paper's direction*: the paper's judges preferred the fine-tuned Qwen3-VL-32B transcripts
   (qwen3-vl-32b-sporc-lora.txt) over the 235B base ones for naturalness. Agreement = the share of stories where
   the measure scores the tuned transcript higher (ties count against); exact two-sided sign test over the
   stories that differ.
2. *real over junk*: each real transcript (both systems) against two junk versions of itself — its turns shuffled
   (speakers kept in place, so the labels still alternate) and a loop of its first three turns to the same
   number of turns. The share of pairs where the real one scores higher (ties count against).

A measure passes when real beats each junk kind in ≥ 95% of pairs AND it agrees with the paper's judges on more
stories than not with sign-test p < 0.05. A measure that fails is reported as failing and the plan leaves it out
of the decision (plan.py reads VALIDATION_FILE). The figures of the last run are committed in VALIDATION_FILE.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vispod.common.settings import DatasetSettings
from vispod.common.statistics import sign_test
from vispod.common.story_folder import STORY_FILE, iter_stories
from vispod.metrics.caption_grounding import CaptionGrounder
from vispod.metrics.naturalness import MEASURES, MIN_TURNS, Naturalness, naturalness_of_vectors, turn_vectors
from vispod.metrics.speaker_turns import Turn, parse_turns

TUNED, BASE = "qwen3-vl-32b-sporc-lora", "qwen3-vl-235b-base"
JUNK_MIN_PREFERENCE = 0.95
SIGN_ALPHA = 0.05
LOOP_TURNS = 3
VALIDATION_FILE = Path(__file__).with_name("naturalness_validation.json")


@dataclass(frozen=True)
class Scored:
    real: Naturalness
    shuffled: Naturalness
    looping: Naturalness


def junk_orders(n: int, key: str) -> tuple[list[int], list[int]]:
    """Turn orders of the two junk versions: a seeded shuffle (never the identity) and a loop of the first turns."""
    rng = random.Random(key)
    order = list(range(n))
    while order == list(range(n)):
        rng.shuffle(order)
    return order, [i % LOOP_TURNS for i in range(n)]


def score_transcript(grounder: CaptionGrounder, turns: Sequence[Turn], key: str) -> Scored:
    """The measures of a transcript and of its two junk versions (the turn vectors are computed once)."""
    vectors = turn_vectors(grounder, [t.text for t in turns])
    shuffled, looping = junk_orders(len(turns), key)

    def variant(order: Sequence[int]) -> Naturalness:
        moved = [Turn(turns[pos].speaker, turns[src].text) for pos, src in enumerate(order)]
        return naturalness_of_vectors(moved, [vectors[i] for i in order], grounder.weights)

    return Scored(naturalness_of_vectors(turns, vectors, grounder.weights), variant(shuffled), variant(looping))


def paired_transcripts(dataset: Path, limit: int | None = None) -> list[tuple[str, list[Turn], list[Turn]]]:
    """(story id, tuned turns, base turns) of each story whose two transcripts both parse into ≥ 3 turns."""
    out = []
    for story in sorted(iter_stories(dataset, "story_*"), key=lambda s: s.folder.name):
        if not (story.folder / STORY_FILE).is_file():
            continue
        tuned, base = story.text(TUNED), story.text(BASE)
        if tuned is None or base is None:
            continue
        tuned_turns = [t for t in parse_turns(tuned) if t.text.strip()]
        base_turns = [t for t in parse_turns(base) if t.text.strip()]
        if len(tuned_turns) >= MIN_TURNS and len(base_turns) >= MIN_TURNS:
            out.append((story.story_id, tuned_turns, base_turns))
        if limit is not None and len(out) >= limit:
            break
    return out


def _share(pairs: Sequence[tuple[float, float]]) -> float:
    return sum(a > b for a, b in pairs) / len(pairs) if pairs else 0.0


def validate(dataset: Path, grounder: CaptionGrounder, limit: int | None = None) -> dict:
    """The validation figures of every measure (see the module docstring)."""
    started = time.perf_counter()
    stories = paired_transcripts(dataset, limit)
    scored = [(sid, score_transcript(grounder, tuned, f"{sid}/tuned"), score_transcript(grounder, base, f"{sid}/base"))
              for sid, tuned, base in stories]
    measures: dict[str, dict] = {}
    for name in MEASURES:
        def value(n: Naturalness, name: str = name) -> float:
            return float(getattr(n, name))

        direction = [(value(t.real), value(b.real)) for _, t, b in scored]
        wins = sum(a > b for a, b in direction)
        losses = sum(a < b for a, b in direction)
        reals = [s for _, t, b in scored for s in (t, b)]
        shuffled = _share([(value(s.real), value(s.shuffled)) for s in reals])
        looping = _share([(value(s.real), value(s.looping)) for s in reals])
        p = sign_test(wins, losses)
        agrees = wins > losses and p < SIGN_ALPHA
        measures[name] = {
            "paper_agreement": wins / len(direction) if direction else 0.0, "tuned_higher": wins,
            "base_higher": losses, "ties": len(direction) - wins - losses, "sign_p": p,
            "real_over_shuffled": shuffled, "real_over_looping": looping,
            "passed": agrees and shuffled >= JUNK_MIN_PREFERENCE and looping >= JUNK_MIN_PREFERENCE,
        }
    return {
        "stories": len(stories), "pairs_per_junk_kind": 2 * len(stories), "weights": grounder.weights,
        "tuned": TUNED, "base": BASE, "criteria": {
            "junk_min_preference": JUNK_MIN_PREFERENCE, "paper_direction": "tuned higher on more stories, "
            f"exact two-sided sign test p < {SIGN_ALPHA}", "junk": f"turns shuffled (speakers kept); a loop of "
            f"the first {LOOP_TURNS} turns", "ties": "count against the measure"},
        "measures": measures, "seconds": round(time.perf_counter() - started, 1),
    }


def passed_measures(path: Path = VALIDATION_FILE) -> tuple[str, ...]:
    """The measures whose committed validation passed (the only ones a decision may use)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return tuple(name for name, figures in doc["measures"].items() if figures["passed"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vispod.evaluation.naturalness_validation",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=None, help="vist-podcast-50 (default: VISPOD_DATASETS_ROOT)")
    ap.add_argument("--stories", type=int, default=None, help="only the first N stories (a quick look)")
    ap.add_argument("--out", type=Path, default=VALIDATION_FILE)
    args = ap.parse_args(argv)
    figures = validate(args.dataset or DatasetSettings().vist_podcast_50, CaptionGrounder(), args.stories)
    Path(args.out).write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    for name, f in figures["measures"].items():
        print(f"{name}: {'PASSED' if f['passed'] else 'FAILED'} — paper agreement {f['paper_agreement']:.2f} "
              f"(p={f['sign_p']:.3g}), real over shuffled {f['real_over_shuffled']:.2f}, over looping "
              f"{f['real_over_looping']:.2f}")
    print(f"wrote {args.out} ({figures['stories']} stories, {figures['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
