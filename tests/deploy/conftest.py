"""Fixtures that render the chart and the kustomize overlays (helpers: deploy_tools.py)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from deploy_tools import CHART, K8S, Rendered, find_tool, run


@pytest.fixture(scope="session")
def helm_template() -> Callable[..., str]:
    helm = find_tool("helm")

    @cache
    def render(*values_files: str, api_versions: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> str:
        cmd = [helm, "template", "vispod", str(CHART), "--namespace", "vispod"]
        for f in values_files:
            cmd += ["-f", str(CHART / f)]
        for api in api_versions:
            cmd += ["--api-versions", api]
        for s in sets:
            cmd += ["--set", s]
        return run(cmd)

    return render


@pytest.fixture(scope="session")
def sasl_tls_render(helm_template: Callable[..., str]) -> Rendered:
    """The chart with ci/sasl-tls-values.yaml: Kafka over SASL/TLS and gRPC over mutual TLS."""
    return Rendered.of(helm_template("ci/sasl-tls-values.yaml"))


@pytest.fixture(scope="session")
def kustomize_build() -> Callable[[str], str]:
    """`kustomize build`, or the same kustomize built into kubectl."""
    tool = find_tool("kustomize", "kubectl")
    cmd = [tool, "build"] if Path(tool).name == "kustomize" else [tool, "kustomize"]

    @cache
    def build(overlay: str) -> str:
        return run([*cmd, str(K8S / overlay)])

    return build
