"""Finds the deployment tools (installed by scripts/install-tools.sh) and runs them.

A missing tool fails the test that needs it with the command that installs it: these checks are
part of `make test` and must not quietly skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from vispod.devkit.local_kafka import free_port, stop_process

__all__ = ["free_port", "stop_process"]  # re-exported for the deploy tests

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "vispod"
K8S = REPO / "deploy" / "k8s"
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
TOOLS_BIN = Path(os.environ.get("VISPOD_TOOLS_DIR", Path.home() / ".cache" / "vispod" / "tools")) / "bin"
# Validate against a current release and the newest one kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.34.0", "1.37.0")
MONITORING_API = "monitoring.coreos.com/v1"


def find_tool(*names: str) -> str:
    """Path of the first of `names` found in the project's tool folder, then on PATH; fails the test if none is."""
    for name in names:
        local = TOOLS_BIN / name
        if local.is_file() and os.access(local, os.X_OK):
            return str(local)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"{' or '.join(names)} not found in {TOOLS_BIN} or on PATH: run `bash scripts/install-tools.sh`",
                pytrace=False)


def run(cmd: list[str], stdin: str | None = None, timeout: float = 120) -> str:
    """Runs a tool; on failure shows its output in the test report."""
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}",
                    pytrace=False)
    return proc.stdout


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def object_key(doc: dict) -> str:
    """kind/name of a rendered object; the chart's install-time trainer Job is named trainer-<hash of its spec>
    (a new Job when its immutable spec changes), keyed here as Job/trainer like kustomize's."""
    name = doc["metadata"]["name"]
    if doc["kind"] == "Job" and doc["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "trainer":
        name = "trainer"
    return f"{doc['kind']}/{name}"


def config_data(docs: list[dict], name: str) -> dict[str, str]:
    """The data of the ConfigMap called `name` in rendered manifests."""
    return next(d["data"] for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)


@dataclass(frozen=True)
class Rendered:
    """Rendered manifests and, read from them, the data of the vispod-common ConfigMap."""

    docs: list[dict]
    common: dict[str, str]

    @classmethod
    def of(cls, text: str) -> Rendered:
        docs = load_docs(text)
        return cls(docs, config_data(docs, "vispod-common"))


def validate_files(files: list[Path]) -> dict[Path, list[str]]:
    """kubernetes-validate --strict over many files at once (its start-up dominates): errors per file."""
    tool = find_tool("kubernetes-validate")
    errors: dict[Path, list[str]] = {f: [] for f in files}
    for version in KUBERNETES_VERSIONS:
        proc = subprocess.run([tool, "--strict", "--quiet", "--no-warn", "-k", version, *map(str, files)],
                              capture_output=True, text=True, timeout=300)
        lines = (proc.stdout + proc.stderr).splitlines()
        for line in lines:
            for f in files:
                if f" {f} " in line:
                    errors[f].append(line)
        if proc.returncode != 0 and not any(errors.values()):
            pytest.fail(f"kubernetes-validate exited {proc.returncode}:\n" + "\n".join(lines[-40:]), pytrace=False)
    return errors


