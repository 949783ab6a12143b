"""deploy/k8s (kustomize) and helm/vispod render the same system.

Both renders are normalised (Helm's bookkeeping labels and annotations, namespaces dropped) and
compared object by object: kinds, names, images, ports, env and ConfigMap data, probes, security
contexts, resources, volumes, scheduling — everything else that reaches the cluster.
Monitoring objects (ServiceMonitor, PrometheusRule, the dashboard ConfigMap) exist only in the chart:
they depend on the cluster's prometheus-operator and Grafana.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import pytest
import yaml
from deploy_tools import load_docs, object_key

HELM_ONLY_LABELS = {"app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by",
                    "helm.sh/chart"}
PAIRS = [("base", ()), ("overlays/gpu", ("ci/gpu-values.yaml",)), ("overlays/vllm", ("ci/vllm-values.yaml",)),
         ("overlays/distributed", ("ci/distributed-values.yaml",))]


def normalise(value: object) -> object:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("annotations", "namespace"):
                continue
            if key == "labels":
                item = {k: v for k, v in item.items() if k not in HELM_ONLY_LABELS}
            out[key] = normalise(item)
        return out
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def system(text: str) -> dict[str, dict]:
    objects = {}
    for doc in load_docs(text):
        if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "monitoring":
            continue
        key = object_key(doc)
        assert key not in objects, f"{key} rendered twice"
        doc["metadata"]["name"] = key.split("/", 1)[1]
        objects[key] = normalise(doc)
    return objects


@pytest.mark.parametrize(("overlay", "values"), PAIRS, ids=[p[0] for p in PAIRS])
def test_kustomize_and_helm_render_the_same_system(overlay: str, values: tuple[str, ...],
                                                   kustomize_build: Callable[[str], str],
                                                   helm_template: Callable[..., str]) -> None:
    from_kustomize = system(kustomize_build(overlay))
    from_helm = system(helm_template(*values))
    assert sorted(from_kustomize) == sorted(from_helm), "different sets of objects"
    differing = []
    for key in sorted(from_helm):
        if from_kustomize[key] != from_helm[key]:
            a = yaml.safe_dump(from_kustomize[key], sort_keys=True).splitlines()
            b = yaml.safe_dump(from_helm[key], sort_keys=True).splitlines()
            differing.append(f"{key}:\n" + "\n".join(difflib.unified_diff(a, b, "kustomize", "helm", lineterm="")))
    assert not differing, "\n\n".join(differing)


def test_comparison_sees_a_difference(kustomize_build: Callable[[str], str],
                                      helm_template: Callable[..., str]) -> None:
    """Guards the normalisation: one changed field in one render must make the systems differ."""
    changed = system(helm_template(sets=("generator.replicas=2",)))
    assert changed != system(kustomize_build("base"))
