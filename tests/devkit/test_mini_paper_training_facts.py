"""Plan v2's one change: training scenes whose facts list every object their turns name (v1 left out the detector's
measured 69%, and so taught the model to name what its facts do not list)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from vispod.common.visual_vocabulary import is_supported, noun_mentions, supporting_terms
from vispod.dataset.caption_pairs import ScenePair
from vispod.devkit.mini_paper_data import with_facts
from vispod.devkit.mini_paper_loop import PROFILES, plan_profile
from vispod.evaluation.plan import PLANS, load_plan

TURNS = ((0, 0, "We walked the dog past a parked car and a bench by the river."),
         (0, 1, "The dog wanted the pizza a guy was eating on the bench, of course."),
         (1, 0, "Then the train was late, so we sat with our backpack and a cup of coffee."),
         (1, 1, "I remember the clock on the wall and an umbrella someone forgot."))


def _unsupported_share(pairs: list[ScenePair]) -> float:
    """Of the concrete nouns the target turns name, the share that their own scene's facts phrase does not support:
    what the evaluation's hallucination measure counts, on the training targets."""
    mentions = unsupported = 0
    for pair in pairs:
        for scene, _, text in pair.turns:
            support = supporting_terms(pair.captions[scene], [], [])
            for term in noun_mentions(text):
                mentions += 1
                unsupported += not is_supported(term, support)
    return unsupported / mentions


def test_training_facts_that_list_every_named_object_support_the_targets() -> None:
    pairs = [ScenePair(f"p{i}", "chitchat", ("", ""), TURNS) for i in range(40)]
    faithful, counts = with_facts(pairs, random.Random(3), object_miss_rate=0.0)
    measured, _ = with_facts(pairs, random.Random(3))            # v1: the detector's measured miss rate
    assert counts["scenes"] == 80 and counts["scenes_without_facts"] == 0
    assert _unsupported_share(faithful) < 0.2 < 0.4 < _unsupported_share(measured)
    assert "dog" in faithful[0].captions[0] and "clock" in faithful[0].captions[1]


def test_plan_v2_trains_on_faithful_facts_and_v1_keeps_its_cached_adapters() -> None:
    v2 = plan_profile(load_plan(PLANS / "mini-paper-v2.yaml"))
    assert v2.data.object_miss_rate == 0.0 and v2.max_steps == PROFILES["quick"].max_steps
    v1 = plan_profile(load_plan(PLANS / "mini-paper-v1.yaml"))
    assert v1 == PROFILES["quick"]        # unchanged: v1's data, cache keys and adapters are what they were


def test_the_v1_plan_file_is_the_one_its_test_read_recorded() -> None:
    ledger = Path(__file__).parents[2] / "results" / "mini-paper" / "test-split-reads.jsonl"
    v1 = [json.loads(line) for line in ledger.read_text().splitlines() if json.loads(line)["version"] == 1]
    assert {e["sha256"] for e in v1} == {load_plan(PLANS / "mini-paper-v1.yaml").sha256}
