"""The plan of an evaluation, fixed before the run, and the guard that reads its test split once.

A plan file (plans/mini-paper-v<N>.yaml) names the stories (dev and test splits: complete stories only), seeds,
adapter training seeds (≥ 3), metrics, targets and the decision rule (vispod.gate.policy reads its `decision`
block). `load_plan` checks it: splits disjoint and inside the complete stories, every metric a MetricsComputed
field, every naturalness measure in the decision one whose committed validation passed. `sha256` is the file's
hash; results.json records it, so a result names the exact plan it followed.

The test split is read once per plan version: `read_test_split` appends a record to a ledger (JSON lines: time,
version, sha256, stories, forced, reason) and refuses a second read of the same version unless forced with a
reason, which is recorded too. A changed plan is a new version (a new file), and both versions' results are
reported. The dev split is free to read as often as recipe and prompt choices need.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from vispod.common.metric_fields import sections
from vispod.evaluation.naturalness_validation import passed_measures
from vispod.evaluation.splits import DEFAULT_SPLIT, load_split
from vispod.gate.policy import DecisionRule

PLANS = Path(__file__).with_name("plans")
CURRENT_PLAN = PLANS / "mini-paper-v3.yaml"
DEFAULT_LEDGER = Path("results/mini-paper/test-split-reads.jsonl")
MIN_ADAPTER_SEEDS = 3


class PlanError(ValueError):
    """The plan file is malformed or breaks a rule of planning."""


ROLES = ("tuned", "small_base", "bigger_base", "large_base", "upper_bound", "tuned_whole")
SCAFFOLDS = ("scenes", "whole")
INPUTS = ("facts", "captions")


@dataclass(frozen=True)
class PlanSystem:
    """A system the plan runs: its model (an embedded model id), what it reads, its adapters and seeds."""

    role: str
    name: str
    model: str
    input: str                   # "facts" (perception of the photos) or "captions" (the upper bound)
    adapters: str = "none"       # "all": one adapter per training seed; "first": the first seed's; "none": the base
    seeds: str = "all"           # "all" | "first" | "paired" (the k-th adapter with the k-th generation seed)
    prompt_format: str = "chat"
    few_shot: bool = False
    scaffold: str = "scenes"     # the generator's plan: scene markers and labels given, or the whole dialogue free


class TestSplitAlreadyRead(PlanError):
    """The plan version's test split was read before; a second read needs force and a reason."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class Plan:
    path: Path
    sha256: str
    version: int
    dev: tuple[str, ...]
    test: tuple[str, ...]
    seeds: tuple[int, ...]
    adapter_training_seeds: tuple[int, ...]
    metrics: tuple[str, ...]
    rule: DecisionRule
    document: Mapping[str, Any]
    systems: tuple[PlanSystem, ...] = ()
    excluded: Mapping[str, str] | None = None

    def system(self, role: str) -> PlanSystem:
        for s in self.systems:
            if s.role == role:
                return s
        raise PlanError(f"the plan has no {role} system")

    def samples_of(self, system: PlanSystem) -> list[tuple[int | None, int]]:
        """(adapter training seed or None for the base model, generation seed) per dialogue of a story."""
        adapters: list[int | None] = {"all": list(self.adapter_training_seeds),
                                      "first": list(self.adapter_training_seeds[:1])}.get(system.adapters, [None])
        if system.seeds == "paired":
            return list(zip(adapters, self.seeds, strict=False))
        seeds = self.seeds if system.seeds == "all" else self.seeds[:1]
        return [(a, s) for a in adapters for s in seeds]

    @property
    def prompt_version(self) -> str:
        """The generator's prompt version every system is asked under (prompts/<version>; v1 before plan v3)."""
        return str((self.document.get("generation") or {}).get("prompt_version", "v1"))

    def as_json(self) -> dict[str, object]:
        return {"path": self.path.name, "sha256": self.sha256, "version": self.version, "dev": list(self.dev),
                "test": list(self.test), "excluded": dict(self.excluded or {}), "rule": self.rule.describe()}


def metric_keys() -> frozenset[str]:
    """Every `<section>.<field>` a plan may name (MetricsComputed's metric fields)."""
    return frozenset(f.key for fields in sections().values() for f in fields)


def _ids(values: object, what: str) -> tuple[str, ...]:
    if not isinstance(values, list) or not values:
        raise PlanError(f"{what} must be a non-empty list")
    ids = tuple(str(v) for v in values)
    if len(set(ids)) != len(ids):
        raise PlanError(f"{what} lists a story twice")
    return ids


def _systems(doc: Mapping[str, Any], path: Path) -> tuple[PlanSystem, ...]:
    raw = doc.get("systems")
    if not isinstance(raw, dict) or set(raw) != set(ROLES):
        raise PlanError(f"{path}: systems must name exactly the roles {list(ROLES)}")
    out = []
    for role in ROLES:
        spec = raw[role]
        if not isinstance(spec, dict) or not spec.get("name") or not spec.get("model"):
            raise PlanError(f"{path}: systems.{role} needs a name and a model")
        if spec.get("input") not in INPUTS:
            raise PlanError(f"{path}: systems.{role}.input must be one of {list(INPUTS)}")
        if spec.get("scaffold", "scenes") not in SCAFFOLDS:
            raise PlanError(f"{path}: systems.{role}.scaffold must be one of {list(SCAFFOLDS)}")
        if spec.get("adapters", "none") not in ("all", "first", "none"):
            raise PlanError(f"{path}: systems.{role}.adapters must be 'all', 'first' or 'none'")
        if spec.get("seeds", "all") not in ("all", "first", "paired"):
            raise PlanError(f"{path}: systems.{role}.seeds must be 'all', 'first' or 'paired'")
        if spec.get("seeds") == "paired" and spec.get("adapters") != "all":
            raise PlanError(f"{path}: systems.{role}: paired seeds pair every adapter with a seed (adapters: all)")
        out.append(PlanSystem(role, str(spec["name"]), str(spec["model"]), spec["input"],
                              str(spec.get("adapters", "none")), str(spec.get("seeds", "all")),
                              str(spec.get("prompt_format", "chat")), bool(spec.get("few_shot", False)),
                              str(spec.get("scaffold", "scenes"))))
    if len({s.name for s in out}) != len(out):
        raise PlanError(f"{path}: system names must be unique")
    return tuple(out)


def load_plan(path: Path = CURRENT_PLAN, split_path: Path = DEFAULT_SPLIT) -> Plan:
    """Read and check a plan file (see the module docstring for the rules)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        doc = yaml.safe_load(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise PlanError(f"cannot read plan {path}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), int):
        raise PlanError(f"{path}: a plan is a mapping with an integer version")
    splits = doc.get("splits") or {}
    dev, test = _ids(splits.get("dev"), "splits.dev"), _ids(splits.get("test"), "splits.test")
    if set(dev) & set(test):
        raise PlanError(f"{path}: stories in both dev and test: {sorted(set(dev) & set(test))}")
    complete = set(load_split(split_path).eval)
    outside = sorted((set(dev) | set(test)) - complete)
    if outside:
        raise PlanError(f"{path}: not complete stories (all 5 photos captioned): {outside}")
    excluded = {str(k): str(v) for k, v in (splits.get("excluded") or {}).items()}
    unaccounted = sorted(complete - set(dev) - set(test) - set(excluded))
    if unaccounted or set(excluded) & (set(dev) | set(test)):
        raise PlanError(f"{path}: every complete story is dev, test or excluded with a reason, once: "
                        f"{unaccounted or sorted(set(excluded) & (set(dev) | set(test)))}")
    adapter_seeds = tuple(int(s) for s in doc.get("adapter_training_seeds") or ())
    if len(set(adapter_seeds)) < MIN_ADAPTER_SEEDS:
        raise PlanError(f"{path}: at least {MIN_ADAPTER_SEEDS} distinct adapter training seeds, got {adapter_seeds}")
    seeds = tuple(int(s) for s in (doc.get("generation") or {}).get("seeds") or ())
    if len(seeds) < len(adapter_seeds):
        raise PlanError(f"{path}: generation.seeds needs a seed per adapter training seed ({len(adapter_seeds)})")
    prompt_version = (doc.get("generation") or {}).get("prompt_version", "v1")
    if not (isinstance(prompt_version, str) and re.fullmatch(r"v[0-9]{1,3}", prompt_version)):
        raise PlanError(f"{path}: generation.prompt_version must name a prompt folder such as v1, "
                        f"got {prompt_version!r}")
    miss_rate = (doc.get("training") or {}).get("object_miss_rate")
    if miss_rate is not None and not (isinstance(miss_rate, int | float) and 0.0 <= miss_rate <= 1.0):
        raise PlanError(f"{path}: training.object_miss_rate must be a share between 0 and 1, got {miss_rate!r}")
    metrics = tuple(str(m) for m in doc.get("metrics") or ())
    unknown = sorted(set(metrics) - metric_keys())
    if unknown:
        raise PlanError(f"{path}: not MetricsComputed metrics: {unknown}")
    rule = DecisionRule.from_plan(doc.get("decision") or {})
    undeclared = sorted(set(rule.names) - set(metrics))
    if undeclared:
        raise PlanError(f"{path}: the decision uses metrics the plan does not list: {undeclared}")
    validated = set(passed_measures())
    unvalidated = sorted(m for m in rule.names if m.startswith("naturalness.") and m.split(".", 1)[1] not in validated)
    if unvalidated:
        raise PlanError(f"{path}: naturalness measures that failed their validation cannot decide: {unvalidated}")
    return Plan(path, hashlib.sha256(raw).hexdigest(), doc["version"], dev, test, seeds, adapter_seeds, metrics,
                rule, doc, _systems(doc, path), excluded)


def ledger_entries(ledger: Path) -> list[dict]:
    if not Path(ledger).is_file():
        return []
    return [json.loads(line) for line in Path(ledger).read_text(encoding="utf-8").splitlines() if line.strip()]


def read_test_split(plan: Plan, ledger: Path = DEFAULT_LEDGER, *, force: bool = False,
                    reason: str = "") -> tuple[str, ...]:
    """The plan's test stories, recorded in `ledger`; a second read of the same version needs force and a reason."""
    earlier = [e for e in ledger_entries(ledger) if e.get("version") == plan.version]
    if earlier and not force:
        first = earlier[0]
        raise TestSplitAlreadyRead(
            f"the test split of plan v{plan.version} was read at {first['time']} (sha256 {first['sha256'][:12]}…); "
            "a changed plan is a new version; reading it again needs force=True and a reason, which is recorded")
    if force and not reason.strip():
        raise PlanError("a forced second read of a test split needs a reason (it is recorded)")
    changed = [e for e in earlier if e.get("sha256") != plan.sha256]
    entry = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "version": plan.version,
             "sha256": plan.sha256, "plan": plan.path.name, "stories": list(plan.test), "forced": bool(earlier),
             "reason": reason.strip(), "plan_changed_since_first_read": bool(changed)}
    Path(ledger).parent.mkdir(parents=True, exist_ok=True)
    with Path(ledger).open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")
    return plan.test
