"""An import inside a function says why it is there (issue 29): module-level imports show the graph to readers and
tools, so one kept in a function (a heavy or optional dependency, the CLI's start-up) carries its reason."""

from __future__ import annotations

import ast
from pathlib import Path

from import_graph import REPO

# The lead's mini-paper files were out of this sweep's reach (#29, session 8); nothing else may join.
NOT_YET_SWEPT = {"services/devkit/src/vispod/devkit/mini_paper_loop.py",
                 "services/devkit/src/vispod/devkit/mini_paper_data.py"}
# Lines an import's reason may sit above, beside other imports of the same block.
_PASS_THROUGH = ("try:", "else:", "if ", "elif ", "with ")


def unexplained(path: Path) -> list[int]:
    """Lines of imports inside functions with no reason: none on the statement, none in the comment lines above
    its block (other imports, blank lines, try/if/else lines between), and no word of it in the function's
    docstring."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: set[int] = set()
    for fn in ast.walk(ast.parse("\n".join(lines), filename=str(path))):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if "import" in (ast.get_docstring(fn) or ""):
            continue
        imports = [n for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)]
        in_import = {i for n in imports for i in range(n.lineno, (n.end_lineno or n.lineno) + 1)}
        for node in imports:
            own = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            if any("#" in lines[i - 1] for i in own):
                continue
            i = node.lineno - 1
            while i >= 1:
                text = lines[i - 1].strip()
                if text.startswith("#") or ("#" in text and (i in in_import or text.startswith(_PASS_THROUGH))):
                    break
                if text and i not in in_import and not text.startswith(_PASS_THROUGH):
                    found.add(node.lineno)
                    break
                i -= 1
    return sorted(found)


def test_the_scan_wants_a_reason_for_each_import_inside_a_function(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def a():\n    import json\n    return json\n\n\n"                               # 2: no reason
        "def b():\n    x = 1\n    import torch  # heavy\n    return torch, x\n\n\n"          # a reason beside it
        "def c():\n    # heavy: both\n    import torch\n\n    from transformers import X\n    return X\n\n\n"
        "def d():\n    if True:\n        import numpy\n    return numpy\n\n\n"              # 22: no reason
        "def e():\n    \"\"\"The import here waits for the first call.\"\"\"\n    import numpy\n    return numpy\n")
    assert unexplained(probe) == [2, 22]


def test_every_import_inside_a_function_says_why() -> None:
    files = [p for p in sorted(REPO.glob("services/*/src/vispod/**/*.py")) if "/vispod/v1/" not in p.as_posix()]
    assert len(files) > 100
    offenders = [f"{path.relative_to(REPO)}:{line}" for path in files
                 if path.relative_to(REPO).as_posix() not in NOT_YET_SWEPT for line in unexplained(path)]
    assert offenders == []
