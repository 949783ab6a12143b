"""The gate's image holds the live gate, not the research harness (issue 29): no harness module inside the gate
package, no import of vispod.evaluation from it, and no `vispod eval` among the commands it registers."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from vispod.gate import cli

GATE = Path(__file__).resolve().parents[2] / "services" / "gate" / "src" / "vispod" / "gate"
# Modules of the offline harness, wherever they lived: vispod.evaluation holds them now.
HARNESS = {"mini_paper", "splits.py", "offline_policy.py", "story_report.py", "evaluation.py", "report.py",
           "local_services.py", "runner.py", "eval_report.py"}


def test_the_gate_package_neither_holds_nor_imports_the_evaluation_harness() -> None:
    names = {p.relative_to(GATE).as_posix() for p in GATE.rglob("*") if "__pycache__" not in p.parts}
    assert "gate.py" in names
    assert not HARNESS & names
    imported = set()
    for path in GATE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
    assert not [m for m in imported if m.startswith("vispod.evaluation")]
    assert "vispod.gate.policy" in imported  # the one policy module is the live gate's too


def test_the_gate_registers_its_own_commands_only() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    assert sorted(sub.choices) == ["gate"]
    assert parser.parse_args(["gate", "report"]).func is cli.run_gate_report
