"""Helm chart and kustomize renders: lint, schema, validation against Kubernetes schemas, hardening."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from deploy_tools import (
    CHART,
    MONITORING_API,
    PROMETHEUS_DIR,
    Rendered,
    config_data,
    find_tool,
    load_docs,
    object_key,
    run,
    validate_files,
)

VALUES_SETS = ["", "ci/gpu-values.yaml", "ci/vllm-values.yaml", "ci/sasl-tls-values.yaml", "ci/minimal-values.yaml",
               "ci/distributed-values.yaml"]
LONG_RUNNING = {"synth", "generator", "judge", "metrics", "voice"}
KAFKA_ONLY = {"gate"}  # no gRPC server: HTTP /healthz and /readyz on the metrics port


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    """(kind/name, pod spec) of every workload."""
    out = []
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] in ("Deployment", "Job"):
            out.append((object_key(d), spec["template"]["spec"]))
        elif d["kind"] == "CronJob":
            out.append((f"CronJob/{d['metadata']['name']}", spec["jobTemplate"]["spec"]["template"]["spec"]))
    return out


@pytest.mark.parametrize("values", VALUES_SETS)
def test_helm_lint_strict(values: str) -> None:
    cmd = [find_tool("helm"), "lint", "--strict", str(CHART)]
    if values:
        cmd += ["-f", str(CHART / values)]
    run(cmd)


# The operator renders add only CRD objects, which kubernetes-validate has no schema for: they are
# checked for presence here and by promtool (test_prometheus_rule_in_chart_is_the_tested_rules_file).
RENDERS = [f"helm:{v or 'default'}:{op}" for v in VALUES_SETS for op in ("plain", "operator")] + [
    "kustomize:base", "kustomize:overlays/gpu", "kustomize:overlays/vllm", "kustomize:overlays/distributed"]
VALIDATED = [r for r in RENDERS if not r.endswith(":operator")]


@pytest.fixture(scope="module")
def validated(helm_template: Callable[..., str], kustomize_build: Callable[[str], str],
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, list[str]]]:
    """Every render, and the errors kubernetes-validate --strict found in it (one run for all of them)."""
    folder = tmp_path_factory.mktemp("renders")
    texts: dict[str, str] = {}
    for render in RENDERS:
        tool, source, *mode = render.split(":")
        if tool == "helm":
            values = () if source == "default" else (source,)
            texts[render] = helm_template(*values, api_versions=(MONITORING_API,) if mode == ["operator"] else ())
        else:
            texts[render] = kustomize_build(source)
    files = {}
    for i, render in enumerate(VALIDATED):
        files[render] = folder / f"render{i}.yaml"
        files[render].write_text(texts[render])
    # A canary proves the validator really rejects things (a strict-mode typo and a wrong type).
    canary = folder / "canary.yaml"
    canary.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec: {ports: [{port: x}], tpye: A}\n")
    errors = validate_files([*files.values(), canary])
    assert errors[canary], "kubernetes-validate accepted an invalid Service: the check is broken"
    return {render: (texts[render], errors.get(files.get(render), [])) for render in RENDERS}


@pytest.mark.parametrize("render", RENDERS)
def test_render_validates_against_kubernetes_schemas(render: str, validated: dict[str, tuple[str, list[str]]]) -> None:
    text, errors = validated[render]
    assert not errors, "\n".join(errors)
    kinds = {d["kind"] for d in load_docs(text)}
    if render.startswith("helm:"):
        with_operator = render.endswith(":operator")
        assert ("PrometheusRule" in kinds) == with_operator, "PrometheusRule must follow the CRD's presence"
        assert ("ServiceMonitor" in kinds) == with_operator


@pytest.mark.parametrize("bad", [
    "kafka.securityProtocol=PLAIN_TEXT",
    "kafka.sasl.mechanism=GSSAPI",
    "synth.replicas=-1",
    "tgi.modelId=Qwen/Qwen2.5-VL-7B-Instruct",   # a hub id: TGI must get a local path
    "generator.env.lowercase_key=x",
    "unknownTopLevel=1",
])
def test_schema_rejects_bad_values(bad: str) -> None:
    proc = subprocess.run([find_tool("helm"), "template", "vispod", str(CHART), "--set", bad],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, f"--set {bad} rendered"
    assert "schema" in proc.stderr


def test_every_workload_is_hardened(helm_template: Callable[..., str], kustomize_build: Callable[[str], str]) -> None:
    renders = {"helm gpu": helm_template("ci/gpu-values.yaml"), "helm tls": helm_template("ci/sasl-tls-values.yaml"),
               "helm vllm": helm_template("ci/vllm-values.yaml"), "kustomize base": kustomize_build("base"),
               "helm distributed": helm_template("ci/distributed-values.yaml")}
    for label, text in renders.items():
        docs = load_docs(text)
        workloads = pod_specs(docs)
        assert workloads, label
        # A pod gets an API token only when a RoleBinding gives its service account something (the TGI rollout).
        bound = {s["name"] for d in docs if d["kind"] == "RoleBinding" for s in d["subjects"]}
        for name, pod in workloads:
            where = f"{label} {name}"
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["securityContext"]["runAsUser"] == 10001, where
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert pod["automountServiceAccountToken"] is (pod.get("serviceAccountName") in bound), where
            assert pod["terminationGracePeriodSeconds"] > 10, f"{where}: must outlast the app's 10 s grace"
            tmp = [v for v in pod["volumes"] if v["name"] == "tmp"]
            assert tmp and "emptyDir" in tmp[0], where
            for c in pod["containers"] + pod.get("initContainers", []):
                sc = c["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True, where
                assert sc["allowPrivilegeEscalation"] is False, where
                assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], where
                assert any(m["mountPath"] == "/tmp" and m["name"].startswith("tmp") for m in c["volumeMounts"]), where
                assert c["resources"]["requests"] and c["resources"]["limits"], where


def test_services_probe_grpc_health_and_have_pdb_hpa_netpol(helm_template: Callable[..., str]) -> None:
    docs = load_docs(helm_template())
    by_kind: dict[str, set[str]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], set()).add(d["metadata"]["name"])
    for svc in LONG_RUNNING:
        for kind in ("Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler",
                     "NetworkPolicy"):
            assert svc in by_kind.get(kind, set()), f"{kind}/{svc} missing"
    for svc in KAFKA_ONLY:
        for kind in ("Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy"):
            assert svc in by_kind.get(kind, set()), f"{kind}/{svc} missing"
    assert "trainer" in by_kind["CronJob"] and any(j.startswith("trainer-") for j in by_kind["Job"])
    # Adapters live in the adapter store (S3), not on a shared volume.
    assert {"vispod-artifacts", "vispod-models", "trainer-data", "trainer-work"} == by_kind["PersistentVolumeClaim"]
    for name, pod in pod_specs(docs):
        if name.startswith("Deployment/"):
            c = pod["containers"][0]
            if name.split("/")[1] in KAFKA_ONLY:
                assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}, name
                assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}, name
                assert {p["containerPort"] for p in c["ports"]} == {8082}
                continue
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert c[probe]["grpc"] == {"port": 8081}, f"{name} {probe}"
            assert {p["containerPort"] for p in c["ports"]} == {8081, 8082}


def test_services_get_what_they_need_to_start_in_production(helm_template: Callable[..., str]) -> None:
    """Each service's settings validator passes with these: models from the volume, never a random fallback."""
    docs = load_docs(helm_template())
    assert config_data(docs, "synth")["VISPOD_SYNTH_MODEL_PATH"].startswith("/var/lib/vispod/models/")
    assert config_data(docs, "synth")["VISPOD_SYNTH_TINY_IF_UNSET"] == "false"
    metrics = config_data(docs, "metrics")
    assert metrics["VISPOD_METRICS_CLIP_WEIGHTS"].startswith("/var/lib/vispod/models/")
    assert "VISPOD_METRICS_CLIP_RANDOM_INIT" not in metrics
    generator = config_data(docs, "generator")
    assert generator["VISPOD_GENERATOR_MODEL_PATH"].startswith("/var/lib/vispod/models/")
    assert generator["VISPOD_GENERATOR_BASE_MODEL_ID"] == config_data(docs, "trainer")["VISPOD_TRAINER_BASE_MODEL_ID"]
    pods = dict(pod_specs(docs))
    mounts = {m["mountPath"] for m in pods["Deployment/generator"]["containers"][0]["volumeMounts"]}
    for key in ("VISPOD_GENERATOR_ADAPTER_STATE_DIR", "VISPOD_GENERATOR_ADAPTER_CACHE_DIR"):
        assert any(generator[key].startswith(m + "/") for m in mounts if m != "/var/lib/vispod/models"), key
    assert config_data(docs, "judge")["VISPOD_JUDGE_STATE_DIR"].startswith("/var/lib/vispod/artifacts/")
    judge_env = {e["name"] for e in pods["Deployment/judge"]["containers"][0]["env"]}
    assert {f"VISPOD_JUDGE_{k}_API_KEY" for k in ("OPENAI", "ANTHROPIC", "GEMINI", "VLLM", "TGI")} <= judge_env
    gate = config_data(docs, "gate")
    assert (gate["VISPOD_GATE_GENERATOR_ADDR"], gate["VISPOD_GATE_METRICS_ADDR"], gate["VISPOD_GATE_JUDGE_ADDR"]) == (
        "generator:8081", "metrics:8081", "judge:8081")


def test_trainer_job_follows_its_exit_codes_and_resumes(helm_template: Callable[..., str]) -> None:
    docs = load_docs(helm_template())
    cfg = config_data(docs, "trainer")
    assert cfg["VISPOD_TRAINER_PAIRS_DIR"] == "/data/pairs" and cfg["VISPOD_TRAINER_RESUME"] == "true"
    assert cfg["VISPOD_TRAINER_METRICS_HOST"] == "0.0.0.0" and cfg["VISPOD_TRAINER_METRICS_PORT"] == "8082"
    jobs = {d["kind"]: d["spec"] for d in docs if d["kind"] in ("Job", "CronJob")}
    for spec in (jobs["Job"], jobs["CronJob"]["jobTemplate"]["spec"]):
        rules = spec["podFailurePolicy"]["rules"]
        assert {"action": "FailJob", "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [2, 3]}} \
            in rules
        assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in rules
        pod = spec["template"]["spec"]
        assert pod["restartPolicy"] == "Never" and pod["terminationGracePeriodSeconds"] >= 120
        c = pod["containers"][0]
        assert c["command"] == ["python", "-m", "vispod.trainer"]
        env = {e["name"]: e for e in c["env"]}
        job_name = env["JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"]
        assert job_name == "metadata.labels['batch.kubernetes.io/job-name']"
        assert env["VISPOD_TRAINER_OUTPUT_DIR"]["value"] == "/var/lib/vispod/work/$(JOB_NAME)"
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/data"].get("readOnly") and mounts["/var/lib/vispod/models"].get("readOnly")
        assert not mounts["/var/lib/vispod/work"].get("readOnly") and "/dev/shm" in mounts
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["shm"]["emptyDir"]["medium"] == "Memory"


def test_gpu_values_schedule_tgi_and_trainer_on_gpus(helm_template: Callable[..., str]) -> None:
    docs = load_docs(helm_template("ci/gpu-values.yaml"))
    pods = dict(pod_specs(docs))
    for name in ("Deployment/tgi", "Deployment/synth", "Job/trainer", "CronJob/trainer"):
        pod = pods[name]
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, name
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"], name
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1, name
    tgi = pods["Deployment/tgi"]
    shm = next(v for v in tgi["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"]["medium"] == "Memory"
    env = {e["name"]: e.get("value") for e in tgi["containers"][0]["env"]}
    assert env["MODEL_ID"].startswith("/var/lib/vispod/models/")
    assert "nodeSelector" not in pods["Deployment/judge"]
    for job in ("Job/trainer", "CronJob/trainer"):
        assert pods[job]["containers"][0]["image"].endswith("-cuda")
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "generator")
    assert cm["data"]["VISPOD_GENERATOR_BACKEND"] == "tgi"
    assert cm["data"]["VISPOD_GENERATOR_TGI_URL"] == "http://tgi:80"
    jobs = {d["kind"]: d["spec"] for d in docs if d["kind"] in ("Job", "CronJob")}
    for spec in (jobs["Job"], jobs["CronJob"]["jobTemplate"]["spec"]):
        assert spec["backoffLimit"] >= 0 and spec["activeDeadlineSeconds"] > 0
    # The CronJob's runs expire; the install-time Job stays (an upgrade would re-create a removed one).
    assert jobs["CronJob"]["jobTemplate"]["spec"]["ttlSecondsAfterFinished"] > 0
    assert "ttlSecondsAfterFinished" not in jobs["Job"]


def test_sasl_tls_values_wire_kafka_secrets(sasl_tls_render: Rendered) -> None:
    common = sasl_tls_render.common
    assert common["VISPOD_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert common["VISPOD_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert common["VISPOD_KAFKA_SSL_CAFILE"] == "/etc/vispod/kafka-ca/ca.crt"
    assert "PASSWORD" not in " ".join(common), "the SASL password belongs in a Secret"
    for name, pod in pod_specs(sasl_tls_render.docs):
        c = pod["containers"][0]
        ref = next(e for e in c["env"] if e["name"] == "VISPOD_KAFKA_SASL_PASSWORD")["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("kafka-vispod-user", "password"), name
        assert {"name": "kafka-ca", "mountPath": "/etc/vispod/kafka-ca", "readOnly": True} in c["volumeMounts"], name
        assert {"name": "kafka-ca", "secret": {"secretName": "kafka-cluster-ca"}} in pod["volumes"], name
        assert c["image"].startswith("registry.example.com/vispod/"), name


def test_prometheus_rule_in_chart_is_the_tested_rules_file(helm_template: Callable[..., str], tmp_path) -> None:
    docs = load_docs(helm_template(api_versions=(MONITORING_API,)))
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    source = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    extracted = tmp_path / "rules.yml"
    extracted.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    run([find_tool("promtool"), "check", "rules", str(extracted)])
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor" and d["metadata"]["name"] == "vispod")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True, "keep the runtime's own `service` label"


@pytest.mark.parametrize(("values", "expected"), [
    ("", ["synth.vispod.svc:8081", "vispod-judge", "CronJob \"trainer\"", "No prometheus-operator CRDs"]),
    ("ci/gpu-values.yaml", ["TGI serves /var/lib/vispod/models/Qwen2.5-VL", "no Qwen3-VL support"]),
    ("ci/sasl-tls-values.yaml", ["SASL SCRAM-SHA-512: password from Secret kafka-vispod-user/password"]),
])
def test_notes_render(values: str, expected: list[str], tmp_path: Path) -> None:
    """NOTES.txt is not part of `helm template`: render it through a ConfigMap in a copy of the chart."""
    chart = tmp_path / "vispod"
    shutil.copytree(CHART, chart, symlinks=False)
    (chart / "templates" / "NOTES.txt").rename(chart / "NOTES.txt")
    (chart / "templates" / "notes-check.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n'
        '  notes: {{ tpl (.Files.Get "NOTES.txt") . | quote }}\n')
    cmd = [find_tool("helm"), "template", "vispod", str(chart), "--namespace", "vispod",
           "--show-only", "templates/notes-check.yaml"]
    if values:
        cmd += ["-f", str(chart / values)]
    notes = yaml.safe_load(run(cmd))["data"]["notes"]
    for text in expected:
        assert text in notes, f"{text!r} not in NOTES:\n{notes}"
