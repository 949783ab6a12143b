"""The gate's image holds the live gate, not the research harness (issue 29): no evaluation module inside the gate
package and no import of vispod.evaluation from it."""

from __future__ import annotations

import ast
from pathlib import Path

GATE = Path(__file__).resolve().parents[2] / "services" / "gate" / "src" / "vispod" / "gate"


def test_the_gate_package_neither_holds_nor_imports_the_evaluation_harness() -> None:
    names = {p.relative_to(GATE).as_posix() for p in GATE.rglob("*") if "__pycache__" not in p.parts}
    assert not {"mini_paper", "splits.py", "offline_policy.py", "story_report.py"} & names
    imported = set()
    for path in GATE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
    assert not [m for m in imported if m.startswith("vispod.evaluation")]
    assert "vispod.gate.policy" in imported  # the one policy module is the live gate's too
