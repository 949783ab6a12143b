"""The plan fixed in advance: its checks, its hash, its decision rule, and the test split read once per version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vispod.evaluation.plan import (
    CURRENT_PLAN,
    PLANS,
    PlanError,
    TestSplitAlreadyRead,
    ledger_entries,
    load_plan,
    read_test_split,
)
from vispod.evaluation.splits import load_split


@pytest.mark.parametrize("path", sorted(PLANS.glob("mini-paper-v*.yaml")), ids=lambda p: p.stem)
def test_every_committed_plan_is_valid_and_hashed(path: Path) -> None:
    plan = load_plan(path)
    assert path.stem == f"mini-paper-v{plan.version}" and len(plan.sha256) == 64
    assert not set(plan.dev) & set(plan.test)
    assert set(plan.dev) | set(plan.test) | set(plan.excluded) == set(load_split().eval)
    assert [s.role for s in plan.systems] == ["tuned", "small_base", "bigger_base", "large_base", "upper_bound",
                                             "tuned_whole"]
    assert plan.system("tuned_whole").scaffold == "whole" and plan.system("tuned").scaffold == "scenes"
    assert plan.samples_of(plan.system("large_base")) == [(None, plan.seeds[0])]
    assert len(plan.samples_of(plan.system("tuned"))) == len(plan.adapter_training_seeds)
    assert plan.system("upper_bound").input == "captions" and plan.system("tuned").input == "facts"
    assert len(plan.adapter_training_seeds) >= 3
    assert {m.metric for m in plan.rule.metrics} <= set(plan.metrics)
    assert not any(m.startswith("naturalness.") for m in plan.rule.names)  # none passed its validation


def test_the_current_plan_is_the_newest_version() -> None:
    versions = sorted(load_plan(p).version for p in PLANS.glob("mini-paper-v*.yaml"))
    assert versions == list(range(1, len(versions) + 1)) and load_plan().version == versions[-1] >= 2


def _variant(tmp_path: Path, **changes: object) -> Path:
    doc = yaml.safe_load(CURRENT_PLAN.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = doc
        for key in parents:
            target = target[key]
        target[last] = value
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize(("changes", "clue"), [
    ({"splits__dev": ["45571", "50221"]}, "both dev and test"),
    ({"splits__dev": ["45530"]}, "not complete stories"),
    ({"splits__dev": ["48269"]}, "dev, test or excluded"),
    ({"systems__tuned__input": "pixels"}, "input must be one of"),
    ({"systems__small_base__seeds": "paired"}, "paired seeds pair every adapter"),
    ({"generation__seeds": [17, 18]}, "a seed per adapter training seed"),
    ({"systems__large_base": None}, "needs a name and a model"),
    ({"adapter_training_seeds": [1, 2]}, "at least 3 distinct adapter training seeds"),
    ({"metrics": ["format.valid", "style.charm"]}, "not MetricsComputed metrics"),
    ({"decision__metrics": [{"metric": "naturalness.novelty", "role": "superiority"}],
      "metrics": ["naturalness.novelty"]}, "failed their validation"),
    ({"decision__metrics": [{"metric": "style.words", "role": "superiority"}]}, "does not list"),
    ({"training__object_miss_rate": 1.5}, "object_miss_rate must be a share"),
    ({"training__object_miss_rate": "none"}, "object_miss_rate must be a share"),
    ({"generation__prompt_version": "../v1"}, "prompt_version must name a prompt folder"),
    ({"generation__prompt_version": 2}, "prompt_version must name a prompt folder"),
])
def test_a_plan_that_breaks_a_rule_is_refused(tmp_path: Path, changes: dict, clue: str) -> None:
    with pytest.raises(PlanError, match=clue):
        load_plan(_variant(tmp_path, **changes))


def test_the_test_split_is_read_once_per_version(tmp_path: Path) -> None:
    plan = load_plan()
    ledger = tmp_path / "reads.jsonl"
    assert read_test_split(plan, ledger) == plan.test
    with pytest.raises(TestSplitAlreadyRead, match="was read at"):
        read_test_split(plan, ledger)
    with pytest.raises(PlanError, match="needs a reason"):
        read_test_split(plan, ledger, force=True)
    assert read_test_split(plan, ledger, force=True, reason="generator crashed mid-run") == plan.test
    first, second = ledger_entries(ledger)
    assert (first["forced"], second["forced"], second["reason"]) == (False, True, "generator crashed mid-run")
    assert first["sha256"] == plan.sha256 and first["stories"] == list(plan.test)
    # a new version reads its own test split once
    newer = load_plan(_variant(tmp_path, version=plan.version + 1))
    assert read_test_split(newer, ledger) == newer.test and newer.sha256 != plan.sha256
    assert [json.loads(line)["version"] for line in ledger.read_text().splitlines()] == [
        plan.version, plan.version, plan.version + 1]
