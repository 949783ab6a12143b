"""The dev-split screen of a candidate plan change: what it trains and samples, how it averages, what it refuses."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from vispod.devkit.mini_paper_loop import plan_profile
from vispod.devkit.mini_paper_runs import PLAN_DECODING, Decoding, Sample, generation_key
from vispod.devkit.mini_paper_screen import Candidate, run, story_means
from vispod.evaluation.plan import load_plan


def test_a_candidate_changes_only_what_it_names() -> None:
    plan = load_plan()
    base = plan_profile(plan)
    same = Candidate().profile(plan)
    assert same == base and same.seed == plan.adapter_training_seeds[0]   # the plan's first adapter, as served
    longer = Candidate(max_steps=36, training_seed=1235).profile(plan)
    assert (longer.max_steps, longer.seed, longer.data) == (36, 1235, base.data)
    tag = Candidate(decoding=Decoding(0.3, 0.9)).tag(plan)
    assert tag == f"v{plan.version}-steps{base.max_steps}-seed1234-t0.3-p0.9"
    assert Candidate(role="small_base").tag(plan) == f"v{plan.version}-small_base-t0.7-p0.9"


def test_sampling_is_part_of_a_dialogues_cache_key_and_the_plans_keys_are_unchanged() -> None:
    plan = load_plan()
    sample = Sample(plan.system("tuned"), 1234, "a", 17)
    key = generation_key(sample, 700, "k")
    assert key.endswith("|words=700|seed=17|t=0.7|p=0.9|scenes")          # the key every cached run was stored under
    assert generation_key(sample, 700, "k", PLAN_DECODING) == key
    assert generation_key(sample, 700, "k", Decoding(0.3, 0.9)) != key
    assert generation_key(sample, 700, "k", Decoding(0.7, 0.5)) != key


def test_a_prompt_version_keys_only_the_systems_whose_instruction_it_rewords() -> None:
    plan = load_plan()
    assert plan.version >= 3 and plan.prompt_version == "v2"
    for role, reworded in (("tuned", True), ("bigger_base", True), ("upper_bound", False), ("tuned_whole", False)):
        sample = Sample(plan.system(role), None, "base", 17)
        v1 = generation_key(sample, 700)
        v2 = generation_key(sample, 700, prompt_version="v2")
        assert (v2 != v1) is reworded, role        # the caption-fed and whole-plan systems keep earlier dialogues
        assert v2.endswith("|prompt=v2") is reworded


def test_a_story_counts_once_whatever_its_number_of_dialogues() -> None:
    def scored(story: str, rate: float | None) -> dict:
        return {"story_id": story, "hallucination.rate": rate, "format.valid": 1.0, "reasons": [], "codes": [],
                "unsupported_terms": [], "style_paper": {}, "style_robust": {}}

    rows = [scored("a", 0.0), scored("a", 1.0), scored("a", 1.0), scored("b", 0.0),
            scored("c", None)]                      # no value (no evidence): absent, not zero
    means = story_means(rows)
    assert means["hallucination.rate"] == pytest.approx((2 / 3 + 0.0) / 2, abs=1e-4)
    assert means["aligned_grounding.margin"] is None


@pytest.mark.parametrize("bad", [{"max_steps": 0}, {"temperature": 2.5}, {"top_p": 0.0}])
def test_a_screen_with_settings_the_generator_refuses_stops_before_any_work(bad: dict, tmp_path: Path) -> None:
    args = argparse.Namespace(**{"plan": Path("unused"), "max_steps": None, "temperature": 0.7, "top_p": 0.9,
                                 "training_seed": None, "system": "tuned", "out": tmp_path / "out",
                                 "results": tmp_path / "res", **bad})
    assert run(args) == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "res").exists()
