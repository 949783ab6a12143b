"""The dataset builder is a client of synth's public interface: it draws through `Synthesizer.draw` (the service's
validation, seeds and counters) and never reruns synth's internals (its limits, its metrics, its render)."""

from __future__ import annotations

import ast
from pathlib import Path

import vispod.dataset

# What synth offers other packages (vispod/synth/__init__.py says the same).
SYNTH_PUBLIC = {
    "vispod.synth.engine": {"Synthesizer"},
    "vispod.synth.settings": {"SynthSettings"},
    "vispod.synth.service": {"resolve_model"},
}
PRIVATE_USES = {"render", "settings", "pipe", "synthesize"}   # Synthesizer members the builder must not call


def _synth_imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("vispod.synth")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vispod.synth"):
            allowed = SYNTH_PUBLIC.get(node.module or "", set())
            found += [f"{node.module}.{a.name}" for a in node.names if a.name not in allowed]
    return found


def _offenders(package: Path) -> list[str]:
    out = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        out += [f"{path.name}: imports {name}" for name in _synth_imports(tree)]
        out += [f"{path.name}:{node.lineno}: uses synth.{node.attr}" for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and node.attr in PRIVATE_USES
                and isinstance(node.value, ast.Attribute) and node.value.attr == "synth"]
    return out


def test_the_scan_sees_internal_imports_and_uses(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text("from vispod.synth import metrics\nfrom vispod.synth.engine import Synthesizer\n"
                                       "from vispod.synth.limits import request_from_proto\n\n\n"
                                       "def f(self):\n    return self.synth.render(1)\n")
    assert _offenders(tmp_path) == ["probe.py: imports vispod.synth.metrics",
                                    "probe.py: imports vispod.synth.limits.request_from_proto",
                                    "probe.py:7: uses synth.render"]


def test_the_dataset_builder_uses_only_synths_public_interface() -> None:
    assert _offenders(Path(vispod.dataset.__file__).parent) == []
