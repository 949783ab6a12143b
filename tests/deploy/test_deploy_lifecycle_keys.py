"""Signed adapter lifecycle in the chart: every generator trusts the lifecycle public keys (a Secret), the gate
alone holds its private signing key (another Secret), and the settings point at the mounts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from deploy_tools import config_data, load_docs


def _pod(docs: list[dict], name: str) -> dict:
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
    return deployment["spec"]["template"]["spec"]


def _secret_mounts(pod: dict) -> dict[str, str]:
    """secretName -> mount path in the first container."""
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    return {secrets[m["name"]]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if m["name"] in secrets}


def test_generators_trust_the_lifecycle_keys_and_only_the_gate_holds_its_private_key(
        helm_template: Callable[..., str]) -> None:
    docs = load_docs(helm_template(sets=("lifecycle.publicKeysSecret=keys-pub", "lifecycle.gateKeySecret=gate-key")))
    generator, gate = _secret_mounts(_pod(docs, "generator")), _secret_mounts(_pod(docs, "gate"))
    assert generator["keys-pub"] == config_data(docs, "generator")["VISPOD_GENERATOR_LIFECYCLE_KEYS_DIR"]
    key_file = PurePosixPath(config_data(docs, "gate")["VISPOD_GATE_SIGNING_KEY_FILE"])
    assert gate["gate-key"] == str(key_file.parent) and key_file.name == "gate.key"
    holders = [d["metadata"]["name"] for d in docs if d["kind"] in ("Deployment", "Job", "CronJob")
               and "gate-key" in str(d)]
    assert holders == ["gate"], "only the gate mounts the gate's private key"
