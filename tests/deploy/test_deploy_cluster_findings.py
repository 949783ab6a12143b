"""What the chart got wrong on a real cluster (make k8s-e2e, deploy/k8s-local), pinned down in the render.

- Helm waits for hook Jobs: a post-install trainer Job held `helm install --wait` for the whole training run.
- `helm upgrade` three-way-merges every field the chart renders: an empty LORA_ADAPTERS in the chart reset the
  list the generator had patched into the TGI Deployment, and TGI restarted without the served adapter.
- Every GPU profile runs the trainer on a GPU node (the vLLM profile gave it none).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from deploy_tools import load_docs

GPU_PROFILES = ["ci/gpu-values.yaml", "ci/vllm-values.yaml"]


def trainer_jobs(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"].startswith("trainer")]


def test_install_time_trainer_job_is_no_hook_that_helm_install_waits_for(helm_template: Callable[..., str]) -> None:
    jobs = trainer_jobs(load_docs(helm_template()))
    assert len(jobs) == 1
    annotations = jobs[0]["metadata"].get("annotations") or {}
    assert not any(k.startswith("helm.sh/hook") for k in annotations), annotations


def test_install_time_trainer_job_is_renamed_when_its_spec_changes(helm_template: Callable[..., str]) -> None:
    """An upgrade that changes the Job's (immutable) pod template creates a new Job instead of failing to patch
    it; an upgrade that does not leaves the finished Job alone (no TTL: a Job the TTL controller removed would be
    re-created, and trained again, by the next upgrade)."""
    base = trainer_jobs(load_docs(helm_template()))[0]
    same = trainer_jobs(load_docs(helm_template(sets=("voice.replicas=2",))))[0]
    changed = trainer_jobs(load_docs(helm_template(sets=("trainer.image.tag=0.2.0",))))[0]
    assert base["metadata"]["name"] == same["metadata"]["name"]
    assert base["metadata"]["name"] != changed["metadata"]["name"]
    assert "ttlSecondsAfterFinished" not in base["spec"]


def test_tgi_adapter_list_is_left_to_the_generator_unless_pinned(helm_template: Callable[..., str]) -> None:
    """Unless tgi.loraAdapters pins a list, the chart renders no LORA_ADAPTERS: the list the generator patched
    into the live Deployment is then a field no release manifest holds, which `helm upgrade` leaves as it is."""

    def lora_env(*sets: str) -> list[str | None]:
        docs = load_docs(helm_template("ci/gpu-values.yaml", sets=sets))
        tgi = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "tgi")
        pod = tgi["spec"]["template"]["spec"]
        return [e.get("value") for c in pod["initContainers"] + pod["containers"] for e in c.get("env", [])
                if e["name"] == "LORA_ADAPTERS"]

    assert lora_env() == []
    pinned = lora_env("tgi.loraAdapters=vispod-dialogue@v1")
    assert pinned == ["vispod-dialogue@v1=/var/lib/vispod/adapters/vispod-dialogue/v1"] * 2


@pytest.mark.parametrize("values", GPU_PROFILES)
def test_every_gpu_profile_trains_on_a_gpu_node(values: str, helm_template: Callable[..., str]) -> None:
    docs = load_docs(helm_template(values))
    pods = [j["spec"]["template"]["spec"] for j in trainer_jobs(docs)]
    pods += [d["spec"]["jobTemplate"]["spec"]["template"]["spec"] for d in docs if d["kind"] == "CronJob"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["containers"][0]["image"].endswith("-cuda")


def test_trainer_image_gets_gguf_for_its_text_models() -> None:
    """The trainer loads GGUF base models (SmolLM2, the generator's default) through transformers, which needs
    the gguf package: the trainer's image, built from its declared dependencies, lacked it and every training
    pod of the CPU profile failed with "Please install torch and gguf>=0.10.0"."""
    import tomllib

    from deploy_tools import REPO
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "services" / "trainer" / "pyproject.toml").read_text())["project"]
    assert "gguf" in {Requirement(r).name for r in project["dependencies"]}


def test_gate_eval_set_photos_are_inside_the_generators_image_roots(helm_template: Callable[..., str]) -> None:
    """The gate sends the eval set's photos (on the models volume) to the generator, which reads only files under
    imageAccess.fileRoots: with the defaults every evaluation failed with "outside the allowed image roots"."""
    import json
    from pathlib import PurePosixPath

    from deploy_tools import config_data

    docs = load_docs(helm_template())
    eval_set = PurePosixPath(config_data(docs, "gate")["VISPOD_GATE_EVAL_SET"])
    roots = [PurePosixPath(r) for r in json.loads(config_data(docs, "vispod-common")["VISPOD_IMAGES_FILE_ROOTS"])]
    assert any(eval_set.is_relative_to(r) for r in roots), (eval_set, roots)
    generator = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "generator")
    container = generator["spec"]["template"]["spec"]["containers"][0]
    mounts = [PurePosixPath(m["mountPath"]) for m in container["volumeMounts"]]
    assert any(eval_set.is_relative_to(m) for m in mounts)


def test_a_changed_shared_setting_rolls_every_service(helm_template: Callable[..., str]) -> None:
    """Every service reads the vispod-common ConfigMap (Kafka, image roots) only at start: on the local cluster a
    `helm upgrade` that changed it left every pod on the old settings until restarted by hand."""

    def checksums(*sets: str) -> dict[str, dict[str, str]]:
        docs = load_docs(helm_template(sets=sets))
        return {d["metadata"]["name"]: d["spec"]["template"]["metadata"].get("annotations", {})
                for d in docs if d["kind"] == "Deployment"}

    before, after = checksums(), checksums("kafka.bootstrapServers=broker:9092")
    assert before and all(before[name] != after[name] for name in before), before


@pytest.mark.parametrize("values", [(), ("ci/gpu-values.yaml",), ("ci/vllm-values.yaml",)])
def test_the_generator_always_runs_as_its_own_account_with_a_token_only_for_tgi(
        values: tuple[str, ...], helm_template: Callable[..., str]) -> None:
    """Once a pod template names a service account, `helm upgrade` cannot drop it (the API server restores
    serviceAccountName from the deprecated serviceAccount field): switching serving.engine from tgi back left the
    generator naming an account helm had deleted, and no new generator pod could be created."""
    docs = load_docs(helm_template(*values))
    [deployment] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "generator"]
    pod = deployment["spec"]["template"]["spec"]
    accounts = [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"]
    assert pod["serviceAccountName"] == "generator" and "generator" in accounts
    tgi = "ci/gpu-values.yaml" in values
    assert pod["automountServiceAccountToken"] is tgi
    assert any(d["kind"] == "RoleBinding" for d in docs) is tgi
