"""The chart's multi-node training: an indexed Job whose pods meet through a headless Service, read by the same
torchrun parser that will run in the pods, for several node counts; a Kubeflow PyTorchJob when chosen; and every
rendered object valid against the Kubernetes schemas."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from deploy_tools import CHART, find_tool, load_docs, validate_files

NAME = "trainer-distributed"
SHARED = ("trainer.distributed.enabled=true", "trainer.data.accessMode=ReadWriteMany")


def _render(helm_template: Callable[..., str], *sets: str) -> dict[str, dict]:
    docs = load_docs(helm_template(sets=(*SHARED, *sets)))
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs if NAME in d["metadata"]["name"]}


def _torchrun_args(container: dict, env: dict[str, str]) -> object:
    """The container's command as torchrun will parse it (with $(VAR) expanded as the kubelet does)."""
    from torch.distributed.run import get_args_parser

    cmd = container["command"]
    assert cmd[:3] == ["python", "-m", "vispod.trainer.launch"]
    args = [a.replace("$(NODE_RANK)", env.get("NODE_RANK", "$(NODE_RANK)")) for a in cmd[3:]]
    return get_args_parser().parse_args(args)


@pytest.mark.parametrize(("nodes", "gpus"), [(2, 8), (4, 1)])
def test_indexed_job_rendezvous_fits_the_node_count(helm_template: Callable[..., str], nodes: int, gpus: int) -> None:
    objects = _render(helm_template, f"trainer.distributed.nodes={nodes}", f"trainer.distributed.gpusPerNode={gpus}")
    job, service = objects[f"Job/{NAME}"], objects[f"Service/{NAME}"]
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", nodes, nodes)
    assert spec["backoffLimit"] == nodes * 3 and spec["podReplacementPolicy"] == "Failed"
    assert pod["restartPolicy"] == "Never"
    fail_fast = spec["podFailurePolicy"]["rules"][0]
    assert fail_fast["action"] == "FailJob" and fail_fast["onExitCodes"]["values"] == [2, 3]

    # Headless Service: the pods' subdomain, selecting exactly these pods, published before they are ready.
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert pod["subdomain"] == service["metadata"]["name"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]

    [container] = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    for index in range(nodes):  # what each pod's torchrun will see
        args = _torchrun_args(container, {"NODE_RANK": str(index)})
        assert (args.nnodes, args.node_rank, args.nproc_per_node) == (str(nodes), index, str(gpus))
        # Pod 0 of the Job, by its stable DNS name under the Service, on the Service's port.
        assert args.master_addr == f"{job['metadata']['name']}-0.{service['metadata']['name']}"
        assert args.master_port == port["port"] == port["targetPort"]
        assert args.rdzv_backend == "static" and args.max_restarts == 0  # Kubernetes restarts the gang
        assert (args.module, args.training_script) == (True, "vispod.trainer")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
    assert container["image"].endswith("-cuda")

    # One pod per node; every pod writes to the one shared checkpoint volume, in one folder per Job.
    [term] = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname" and term["labelSelector"]["matchLabels"].items() <= \
        labels.items()
    work = next(v for v in pod["volumes"] if v["name"] == "work")["persistentVolumeClaim"]["claimName"]
    assert objects[f"PersistentVolumeClaim/{work}"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert env["VISPOD_TRAINER_OUTPUT_DIR"]["value"] == "/var/lib/vispod/work/$(RUN_ID)"
    run_id = env["RUN_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert run_id == "metadata.labels['batch.kubernetes.io/controller-uid']"
    assert env["VISPOD_TRAINER_RESUME"]["value"] == "true"
    policy = objects[f"NetworkPolicy/{NAME}"]["spec"]
    assert policy["podSelector"]["matchLabels"] == policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]


def test_cpu_gang_for_a_cluster_without_gpus(helm_template: Callable[..., str]) -> None:
    objects = _render(helm_template, "trainer.distributed.gpusPerNode=0", "trainer.distributed.cpuProcsPerNode=2",
                      "trainer.distributed.onePodPerNode=false")
    pod = objects[f"Job/{NAME}"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    args = _torchrun_args(container, {"NODE_RANK": "1"})
    assert (args.nnodes, args.nproc_per_node, args.node_rank) == ("2", "2", 1)
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {}) and "affinity" not in pod
    assert {"name": "VISPOD_TRAINER_DEVICE", "value": "cpu"} in container["env"]
    assert not container["image"].endswith("-cuda")


def test_pytorchjob_when_chosen(helm_template: Callable[..., str]) -> None:
    objects = _render(helm_template, "trainer.distributed.kind=PyTorchJob", "trainer.distributed.nodes=3")
    assert f"Job/{NAME}" not in objects and f"Service/{NAME}" not in objects  # the operator makes its own
    job = objects[f"PyTorchJob/{NAME}"]
    assert job["apiVersion"] == "kubeflow.org/v1" and job["spec"]["nprocPerNode"] == "8"
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert (replicas["Master"]["replicas"], replicas["Worker"]["replicas"]) == (1, 2)
    for role in replicas.values():
        [container] = role["template"]["spec"]["containers"]
        assert container["name"] == "pytorch"  # the operator injects its PET_* variables into this container
        args = _torchrun_args(container, {})
        assert (args.nproc_per_node, args.module, args.training_script) == ("8", True, "vispod.trainer")
        assert "--nnodes" not in " ".join(container["command"])  # torchrun reads PET_NNODES, PET_NODE_RANK, …
        assert "NODE_RANK" not in {e["name"] for e in container["env"]}


def test_multi_node_refuses_volumes_one_node_can_mount(helm_template: Callable[..., str]) -> None:
    import subprocess

    cmd = [find_tool("helm"), "template", "vispod", str(CHART), "--set", "trainer.distributed.enabled=true"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "trainer.data.accessMode must be ReadWriteMany or ReadOnlyMany" in proc.stderr


def test_rendered_objects_validate(helm_template: Callable[..., str], tmp_path: Path) -> None:
    import yaml

    objects = _render(helm_template, "trainer.distributed.nodes=2")
    files = []
    for key, doc in objects.items():
        path = tmp_path / (key.replace("/", "_") + ".yaml")
        path.write_text(yaml.safe_dump(doc))
        files.append(path)
    errors = validate_files(files)
    assert not any(errors.values()), errors


def test_prometheus_scrapes_rank_0_only(helm_template: Callable[..., str]) -> None:
    docs = load_docs(helm_template(sets=SHARED, api_versions=("monitoring.coreos.com/v1",)))
    [monitor] = [d for d in docs if d["kind"] == "PodMonitor" and d["metadata"]["name"] == NAME]
    job = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == NAME)
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.pop("batch.kubernetes.io/job-completion-index") == "0"  # the pod whose rank 0 serves /metrics
    assert selector.items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
