"""The local cluster's story (scripts/k8s/e2e.py, deploy/k8s-local) stays runnable: it is not part of `make test`
(it needs root and minutes), so what can rot without a cluster is checked here."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import yaml

from vispod.gate.policy import load_rule
from vispod.gate.settings import GateSettings

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "deploy" / "k8s-local"


def test_every_vispod_name_the_e2e_imports_exists() -> None:
    """A module moved elsewhere (vispod.gate.splits became vispod.evaluation.splits) broke the e2e at its first
    phase, seen only on the cluster."""
    tree = ast.parse((REPO / "scripts" / "k8s" / "e2e.py").read_text())
    imported = [(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("vispod") for alias in node.names]
    assert imported
    missing = []
    for module, name in imported:
        try:
            found = hasattr(importlib.import_module(module), name)
        except ImportError:
            found = False
        if not found:
            missing.append(f"{module}.{name}")
    assert not missing


def test_the_cpu_clusters_gate_decides_by_the_plan_without_the_judge(tmp_path: Path) -> None:
    """values-cpu.yaml's gate settings load as the pod would (the plan at its mounted path) and name a valid rule
    on metrics the CPU profile computes (no CLIP weights there: no grounding metric)."""
    env = yaml.safe_load((LOCAL / "values-cpu.yaml").read_text())["gate"]["env"]
    mounted = Path(env["VISPOD_GATE_PLAN_FILE"])
    assert mounted.parent == Path(env["VISPOD_GATE_EVAL_SET"]).parent  # on the models volume, beside the eval set
    plan = tmp_path / mounted.name
    plan.write_text((LOCAL / "gate-plan.yaml").read_text())
    settings = GateSettings(plan_file=plan, without_judge_evidence=env["VISPOD_GATE_WITHOUT_JUDGE_EVIDENCE"])
    rule = load_rule(settings.plan_file)
    assert settings.without_judge_evidence == "plan" and "VISPOD_GATE_MIN_WIN_RATE_LOWER" not in env
    assert rule.names and not any("grounding" in name for name in rule.names)


def _vispod_imports(source: Path) -> set[str]:
    """The vispod packages (vispod.<x>) a module imports at its top level (what `python -m vispod.<svc>` loads)."""
    found = set()
    for node in ast.parse(source.read_text()).body:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        found |= {n.split(".")[1] for n in names if n.startswith("vispod.") and n.count(".") >= 1}
    return found


def test_each_local_image_ships_every_vispod_package_its_code_imports() -> None:
    """The generator imports vispod.perception at start-up; an image with vispod-common and vispod-generator alone
    crashed in a loop on the cluster (ModuleNotFoundError)."""
    images = _images_module()
    for service in images.PY_SERVICES:
        sources = images.vispod_sources(service)
        shipped = {Path(path).parts[4] for _, path in sources if Path(path).parts[3] == "vispod"}
        imported = set().union(*(_vispod_imports(src) for src, path in sources if path.endswith(".py")))
        assert imported <= shipped, f"{service}: imports {sorted(imported - shipped)} that its image lacks"


def test_the_e2e_creates_every_key_and_credentials_secret_the_chart_mounts() -> None:
    """The chart's references to these Secrets are optional (absent: the pod's own identity), so a missing one is no
    error at install: the generator started without S3 credentials (readerCredentialsSecret, new in the chart)
    and dead-lettered every AdapterPublished with NoCredentialsError."""
    values = yaml.safe_load((REPO / "helm" / "vispod" / "values.yaml").read_text())
    wanted = {values["adapterStore"][k] for k in ("credentialsSecret", "readerCredentialsSecret", "publicKeysSecret",
                                                  "signingKeySecret")}
    wanted |= {v for k, v in values["lifecycle"].items() if k.endswith("Secret")}
    tree = ast.parse((REPO / "scripts" / "k8s" / "e2e.py").read_text())
    created = {node.args[0].value for node in ast.walk(tree) if isinstance(node, ast.Call)
               and getattr(node.func, "id", "") == "secret" and isinstance(node.args[0], ast.Constant)}
    assert wanted <= created, sorted(wanted - created)


def _images_module():
    import sys

    sys.path.insert(0, str(REPO / "scripts" / "k8s"))
    try:
        import images
    finally:
        sys.path.pop(0)
    return images


def test_every_image_the_local_profiles_run_is_one_the_cluster_gets(helm_template) -> None:
    """Nothing is pulled (pullPolicy Never): an image the chart names and images.py does not build stays in
    ErrImageNeverPull (TGI's adapter-sync init container needs vispod/adaptersync, a new image)."""
    from deploy_tools import load_docs

    images = _images_module()
    built = {f"vispod/{svc}" for svc in images.PY_SERVICES} | {"vispod/tgi-cpu"}
    rendered = helm_template(str(LOCAL / "values-cpu.yaml"), str(LOCAL / "values-tgi-cpu.yaml"))
    named = set()
    for doc in load_docs(rendered):
        spec = (doc.get("spec") or {}).get("template", {}).get("spec", {})
        if doc.get("kind") == "CronJob":
            spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            named.add(c["image"].rsplit(":", 1)[0])
    assert {"vispod/adaptersync", "vispod/tgi-cpu", "vispod/generator"} <= named
    assert named <= built, sorted(named - built)


def test_an_image_containerd_holds_with_the_same_config_is_not_imported_again(tmp_path: Path) -> None:
    """Every warm run streamed all 11 images (torch's 3.2 GB layer included) into containerd again: ~100 s of the
    e2e. The config names every layer by digest, so the same config means the same image."""
    images = _images_module()
    layer = tmp_path / "layer.tar"
    layer.write_bytes(b"a layer")
    image = {"name": "vispod/gate:0.1.0", "layers": [str(layer)], "env": {"A": "1"}}
    held = {"docker.io/vispod/gate:0.1.0": images.config_digest(image)}
    assert images.stale([image], held) == []
    assert images.stale([image], {}) == [image]
    assert images.stale([dict(image, env={"A": "2"})], held)  # another setting: imported again
    layer.write_bytes(b"another layer")
    assert images.stale([image], held) == [image]  # another layer: imported again
    assert images.full_name("registry.k8s.io/pause:3.10") == "registry.k8s.io/pause:3.10"
