"""vispod's import graph read from the source (ast), for the tests that keep its layers and keep it free of cycles.
Imports inside functions count as much as those at the top: they are dependencies all the same."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imports(path: Path, src: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) for every `import module` (no names) and `from module import names` in `path`,
    relative imports resolved from `src`."""
    package = ".".join(path.relative_to(src).with_suffix("").parts[:-1])
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.append((node.lineno, base, [alias.name for alias in node.names]))
    return found


def imported_modules(path: Path, src: Path) -> list[tuple[int, str]]:
    """Every module an import in `path` names: `from a.b import c` names a.b, `from vispod import gate` the
    package vispod.gate."""
    return [(line, f"{module}.{name}" if module == "vispod" else module)
            for line, module, names in imports(path, src) for name in (names or [""])]


def source_modules(srcs: list[Path]) -> dict[str, Path]:
    """Module name -> file, for every .py under the given src folders (a package is its __init__.py)."""
    modules = {}
    for src in srcs:
        for path in sorted(src.rglob("*.py")):
            parts = path.relative_to(src).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_graph(modules: dict[str, Path], srcs: list[Path]) -> dict[str, set[str]]:
    """Module -> the modules among `modules` it imports, and the packages those lie in (importing a.b.c runs
    a/__init__ and a/b/__init__ first: a package that imports its submodules is part of every import of one). A
    module's import of a package it lies in is left out: that package is initialised before the module runs."""

    def known(name: str) -> str | None:   # `a.b.name` is module a.b.name if it exists, else module a.b
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        src = next(s for s in srcs if path.is_relative_to(s))
        # `from a.b import c` imports module a.b.c when there is one, else a name of a.b
        targets = {known(f"{module}.{n}" if n else module) for _, module, names in imports(path, src)
                   for n in (names or [""])}
        parents = {p for t in targets if t for p in _packages_of(t) if p in modules}
        graph[name] = {t for t in targets | parents if t and t != name and not name.startswith(t + ".")}
    return graph


def _packages_of(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (strongly connected components
    of more than one module), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)
