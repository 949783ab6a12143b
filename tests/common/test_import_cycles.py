"""No two vispod modules import each other, directly or through others: a cycle hides which module is the
foundation, and an import moved into a function to dodge one hides the dependency from readers and tools."""

from __future__ import annotations

from pathlib import Path

from import_graph import REPO, cycles, import_graph, source_modules


def _cycles(srcs: list[Path]) -> list[list[str]]:
    return cycles(import_graph(source_modules(srcs), srcs))


def test_the_scan_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    pkg = tmp_path / "vispod" / "probe"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from vispod.probe.b import B\n\n\nclass A:\n    pass\n")
    (pkg / "b.py").write_text("def B():\n    from vispod.probe import c\n    return c\n")
    (pkg / "c.py").write_text("from . import a\nfrom vispod.probe.d import D\n")
    (pkg / "d.py").write_text("from vispod.probe import __name__ as D\n")   # its own package: not an edge
    assert _cycles([tmp_path]) == [["vispod.probe.a", "vispod.probe.b", "vispod.probe.c"]]


def test_no_import_cycle_between_vispod_modules() -> None:
    srcs = sorted(REPO.glob("services/*/src"))
    assert len(srcs) >= 10
    assert _cycles(srcs) == []
