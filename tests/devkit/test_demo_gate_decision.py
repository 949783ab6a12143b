"""The demo serves what the plan's gate chose: the committed test results decide for the adapter they evaluated."""

import json
from pathlib import Path

from vispod.devkit.demo_adapter import committed_decision
from vispod.evaluation.plan import load_plan


def _results(root: Path, key: str, decision: str, sha: str) -> None:
    plan = load_plan()
    path = root / f"v{plan.version}" / "test" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "adapters": {str(plan.adapter_training_seeds[0]): {"key": key, "adapter_id": "mini-paper@v-1"}},
        "gate": {"decision": decision, "reasons": ["r"], "plan_sha256": sha}}))


def test_the_committed_decision_applies_to_the_adapter_it_evaluated_under_the_current_plan(tmp_path: Path) -> None:
    sha = load_plan().sha256
    _results(tmp_path / "a", "k1", "reject", sha)
    got = committed_decision({"key": "k1"}, tmp_path / "a")
    assert got is not None and got["decision"] == "reject" and got["source"].endswith("/test/results.json")
    assert committed_decision({"key": "another adapter"}, tmp_path / "a") is None
    _results(tmp_path / "b", "k1", "promote", "an older plan's sha256")
    assert committed_decision({"key": "k1"}, tmp_path / "b") is None
    assert committed_decision({"key": "k1"}, tmp_path / "nothing committed") is None
