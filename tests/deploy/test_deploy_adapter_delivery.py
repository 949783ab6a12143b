"""Adapter delivery in the chart and the kustomize overlays: the adapter store's location in ConfigMaps, its
credentials and keys from Secrets, vLLM's adapter-sync container (serving.engine=vllm), TGI's adapter-sync init
container and the rollout RBAC limited to the tgi Deployment (serving.engine=tgi). kubernetes-validate covers
these renders in test_deploy_render.py; kustomize renders the same objects (test_deploy_equivalence.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from deploy_tools import load_docs, object_key

KEYS_SECRET, SIGNING_SECRET = "vispod-adapter-keys", "vispod-trainer-signing-key"
# Least privilege: the trainer writes the store, everyone else reads it with other credentials.
WRITER_SECRET, READER_SECRET = "vispod-adapter-store", "vispod-adapter-store-reader"


def objects(text: str) -> dict[str, dict]:
    return {object_key(d): d for d in load_docs(text)}


def pod(obj: dict) -> dict:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def container(obj: dict, name: str, init: bool = False) -> dict:
    return next(c for c in pod(obj).get("initContainers" if init else "containers", []) if c["name"] == name)


def secret_volumes(obj: dict) -> dict[str, str]:
    return {v["name"]: v["secret"]["secretName"] for v in pod(obj)["volumes"] if "secret" in v}


def credentials_from_secret(c: dict, secret: str = READER_SECRET) -> bool:
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c.get("env", []) if "valueFrom" in e
            and "secretKeyRef" in e["valueFrom"]}
    return all(refs.get(f"VISPOD_ADAPTER_STORE_{v}", {}).get("name") == secret
               for v in ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY"))


@pytest.fixture(scope="module")
def renders(helm_template: Callable[..., str]) -> dict[str, dict[str, dict]]:
    return {"default": objects(helm_template()), "vllm": objects(helm_template("ci/vllm-values.yaml")),
            "tgi": objects(helm_template("ci/gpu-values.yaml"))}


@pytest.mark.parametrize("engine", ["default", "vllm", "tgi"])
def test_store_wiring_keys_and_credentials_come_from_secrets(renders, engine: str) -> None:
    objs = renders[engine]
    config = objs["ConfigMap/generator"]["data"]
    assert config["VISPOD_ADAPTER_STORE_URL"].startswith("s3://")
    assert config["VISPOD_ADAPTER_STORE_KEYRING_DIR"] == "/etc/vispod/adapter-keys"
    generator = objs["Deployment/generator"]
    assert secret_volumes(generator)["adapter-keys"] == KEYS_SECRET
    assert credentials_from_secret(container(generator, "generator"))
    trainer_config = objs["ConfigMap/trainer"]["data"]
    assert trainer_config["VISPOD_ADAPTER_STORE_SIGNING_KEY_FILE"] == "/etc/vispod/trainer-signing-key/trainer.key"
    for kind in ("Job/trainer", "CronJob/trainer"):
        assert secret_volumes(objs[kind])["trainer-signing-key"] == SIGNING_SECRET
        assert credentials_from_secret(container(objs[kind], "trainer"), WRITER_SECRET)
    # The private key reaches the trainer only; no adapter volume is shared any more.
    for key, obj in objs.items():
        if key.split("/")[0] in ("Deployment", "Job", "CronJob") and key != "Job/trainer" and key != "CronJob/trainer":
            assert SIGNING_SECRET not in secret_volumes(obj).values(), key
    assert "PersistentVolumeClaim/vispod-adapters" not in objs
    assert not any("VISPOD_ADAPTER_STORE_SECRET_ACCESS_KEY" in str(d.get("data", {})) for k, d in objs.items()
                   if k.startswith("ConfigMap/"))


def test_vllm_gets_the_adapter_sync_container(renders) -> None:
    objs = renders["vllm"]
    vllm = objs["Deployment/vllm"]
    engine, sync = container(vllm, "vllm"), container(vllm, "adapter-sync")
    assert {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"} in engine["env"]
    assert "--enable-lora" in engine["args"]
    # Its own image and package; the held set comes from the generator, vLLM's API key from a Secret for all three.
    assert sync["command"] == ["python", "-m", "vispod.adaptersync"] and "/adaptersync:" in sync["image"]
    env = {e["name"]: e for e in sync["env"]}
    assert env["VISPOD_ADAPTERSYNC_GENERATOR_ADDR"]["value"] == "generator:8081"
    assert env["VISPOD_ADAPTERSYNC_CANDIDATE_SLOTS"]["value"] == "1" and "VISPOD_ADAPTERSYNC_ONCE" not in env
    key_ref = {"secretKeyRef": {"name": "vispod-vllm-api-key", "key": "api-key"}}
    generator_env = {e["name"]: e for e in container(objs["Deployment/generator"], "generator")["env"]}
    assert env["VISPOD_ADAPTERSYNC_ENGINE_API_KEY"]["valueFrom"] == key_ref
    assert {e["name"]: e for e in engine["env"]}["VLLM_API_KEY"]["valueFrom"] == key_ref
    assert generator_env["VISPOD_GENERATOR_OPENAI_API_KEY"]["valueFrom"] == key_ref
    mounts = {m["name"]: m for m in engine["volumeMounts"]}
    assert mounts["adapters"].get("readOnly") is True                   # vLLM only reads the verified copies
    sync_mounts = {m["name"]: m for m in sync["volumeMounts"]}
    assert not sync_mounts["adapters"].get("readOnly") and sync_mounts["adapter-keys"]["readOnly"]
    assert secret_volumes(vllm)["adapter-keys"] == KEYS_SECRET and credentials_from_secret(sync)
    assert objs["ConfigMap/adapter-sync"]["data"]["VISPOD_ADAPTER_STORE_KEYRING_DIR"] == "/etc/vispod/adapter-keys"
    config = objs["ConfigMap/generator"]["data"]
    assert (config["VISPOD_GENERATOR_BACKEND"], config["VISPOD_GENERATOR_OPENAI_ADAPTER_LOADING"]) == ("openai", "sync")
    assert config["VISPOD_GENERATOR_OPENAI_URL"] == "http://vllm:80"
    # Every replica is asked before an adapter is routed to: a headless Service resolving to each vLLM pod.
    assert config["VISPOD_GENERATOR_OPENAI_REPLICAS_URL"] == "http://vllm-replicas:8000"
    assert objs["Service/vllm-replicas"]["spec"]["clusterIP"] == "None"
    assert not any(k.startswith(("Role/", "RoleBinding/")) for k in objs) and "Deployment/tgi" not in objs
    assert pod(objs["Deployment/generator"])["automountServiceAccountToken"] is False


def test_tgi_gets_the_init_container_and_a_rollout_role_for_one_deployment(renders, helm_template) -> None:
    objs = renders["tgi"]
    role = objs["Role/tgi-rollout"]
    assert role["rules"] == [{"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["tgi"],
                              "verbs": ["get", "patch"]}]
    # RBAC cannot restrict which fields a patch changes: an admission policy lets the generator change only the
    # adapter lists (its CEL is exercised on the real cluster, tests of the Kubernetes issue).
    policy = objs["ValidatingAdmissionPolicy/vispod-tgi-rollout"]["spec"]
    assert policy["matchConstraints"]["resourceRules"][0]["resourceNames"] == ["tgi"]
    assert "':generator'" in policy["matchConditions"][0]["expression"] and policy["failurePolicy"] == "Fail"
    assert all("LORA_ADAPTERS" in v["expression"] for v in policy["validations"][1:3])
    assert objs["ValidatingAdmissionPolicyBinding/vispod-tgi-rollout"]["spec"]["validationActions"] == ["Deny"]
    binding = objs["RoleBinding/tgi-rollout"]
    assert binding["roleRef"]["name"] == "tgi-rollout"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "generator"}]
    generator = pod(objs["Deployment/generator"])
    assert generator["serviceAccountName"] == "generator" and generator["automountServiceAccountToken"] is True
    config = objs["ConfigMap/generator"]["data"]
    assert (config["VISPOD_GENERATOR_BACKEND"], config["VISPOD_GENERATOR_TGI_DEPLOYMENT"]) == ("tgi", "tgi")
    tgi = objs["Deployment/tgi"]
    assert tgi["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0  # old pods serve until new are ready
    sync = container(tgi, "adapter-sync", init=True)
    assert sync["command"] == ["python", "-m", "vispod.adaptersync"] and credentials_from_secret(sync)
    assert {"name": "VISPOD_ADAPTERSYNC_ONCE", "value": "true"} in sync["env"]
    assert config["VISPOD_GENERATOR_ADAPTER_CANDIDATE_SLOTS"] == "1"
    assert objs["ConfigMap/trainer"]["data"]["VISPOD_TRAINER_SERVING_ENGINE"] == "tgi"   # names TGI loads
    assert {v["name"]: v for v in pod(tgi)["volumes"]}["adapters"] == {"name": "adapters", "emptyDir": {}}
    assert pod(tgi)["automountServiceAccountToken"] is False
    # The adapter list TGI starts with is the list the init container fetched and verified.
    with_list = objects(helm_template("ci/gpu-values.yaml", sets=("tgi.loraAdapters=pod@1",)))
    tgi = with_list["Deployment/tgi"]
    want = {"name": "LORA_ADAPTERS", "value": "pod@1=/var/lib/vispod/adapters/pod/1"}
    assert want in container(tgi, "tgi")["env"] and want in container(tgi, "adapter-sync", init=True)["env"]
    assert "Deployment/vllm" not in objs
