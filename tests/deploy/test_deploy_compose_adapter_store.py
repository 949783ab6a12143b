"""docker-compose's adapter store: the s3 service (S3Proxy from the project's jars), the store settings, keys and
credentials each service gets, and the s3 service's own command run for real with the keys `make up` makes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_tools import REPO, find_tool, free_port, run, stop_process
from pydantic import SecretStr

from vispod.common.adapter_store.settings import AdapterStoreSettings
from vispod.devkit.compose_secrets import SECRETS_ENV, write_compose_secrets
from vispod.devkit.local_adapter_store import read_env_file
from vispod.devkit.local_kafka import die_with_parent, wait_listening
from vispod.devkit.local_s3 import resolve_s3proxy_jars
from vispod.devkit.testing.adapter_files import make_fake_adapter_files
from vispod.trainer.publish import BaseIdentity, write_manifest


def _services() -> dict:
    cmd = [find_tool("docker-compose"), "-f", str(REPO / "docker-compose.yml"), "--profile", "train", "config"]
    return yaml.safe_load(run(cmd))["services"]


def test_compose_wires_the_s3_store_keys_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISPOD_ADAPTER_STORE_SECRET_ACCESS_KEY", "from-the-caller")
    services = _services()
    s3 = services["s3"]
    assert s3["network_mode"] == "host" and s3["user"] == "10001:10001" and s3["read_only"] is True
    assert "org.gaul.s3proxy.Main" in s3["entrypoint"][-1] and "127.0.0.1:18900" in s3["entrypoint"][-1]
    for name in ("generator", "trainer"):
        env = services[name]["environment"]
        assert env["VISPOD_ADAPTER_STORE_URL"] == "s3://vispod-adapters/vispod", name
        assert env["VISPOD_ADAPTER_STORE_ENDPOINT_URL"] == "http://127.0.0.1:18900", name
        assert env["VISPOD_ADAPTER_STORE_SECRET_ACCESS_KEY"] == "from-the-caller", name   # passed through
        assert services[name]["depends_on"]["s3"]["condition"] == "service_healthy", name
    gen = services["generator"]
    assert gen["environment"]["VISPOD_GENERATOR_LIFECYCLE_KEYS_DIR"] == "/var/lib/vispod/keys/lifecycle"
    assert any(v.endswith("keys/public:/var/lib/vispod/keys:ro") for v in gen["volumes"])
    assert "VISPOD_ADAPTER_STORE_SIGNING_KEY_FILE" not in gen["environment"]          # only the trainer signs
    assert services["trainer"]["environment"]["VISPOD_ADAPTER_STORE_SIGNING_KEY_FILE"].startswith("/var/lib/vispod/"
                                                                                                   "secrets/")
    assert any(v.endswith("keys/trainer:/var/lib/vispod/secrets:ro") for v in services["trainer"]["volumes"])
    assert services["gate"]["environment"]["VISPOD_GATE_SIGNING_KEY_FILE"] == "/var/lib/vispod/secrets/gate.key"
    assert any(v.endswith("keys/gate:/var/lib/vispod/secrets:ro") for v in services["gate"]["volumes"])
    assert "from-the-caller" not in (REPO / "docker-compose.yml").read_text()


def test_compose_secrets_are_made_once_with_private_keys_only_where_they_sign(tmp_path: Path) -> None:
    env = write_compose_secrets(tmp_path)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert write_compose_secrets(tmp_path) == env
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in (tmp_path / "keys" / "public").rglob("*") if p.is_file()) == [
        "admin.pub", "gate.pub", "trainer.pub"]
    assert (tmp_path / "keys" / "trainer" / "trainer.key").is_file() and (tmp_path / "s3" / "vispod-adapters").is_dir()


@pytest.fixture
def compose_s3(tmp_path: Path):
    """The s3 service's own command, run here: its paths and port mapped to this test's, credentials from
    the file `make up` writes."""
    var = tmp_path / "var"
    creds = read_env_file(write_compose_secrets(var))
    port = free_port()
    command = (_services()["s3"]["entrypoint"][-1].replace("$$", "$")
               .replace("/opt/s3proxy/lib", str(resolve_s3proxy_jars()))
               .replace("/var/lib/vispod/s3", str(var / "s3")).replace("127.0.0.1:18900", f"127.0.0.1:{port}"))
    log = tmp_path / "s3.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["sh", "-c", command], env={**os.environ, **creds}, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    wait_listening(proc, port, 180, "S3Proxy (compose command)", log, lambda: stop_process(proc, 10))
    yield var, f"http://127.0.0.1:{port}", creds
    stop_process(proc, 20)


def test_the_compose_s3_command_serves_signed_versions_with_the_made_keys(compose_s3, tmp_path: Path) -> None:
    var, endpoint, creds = compose_s3
    # The paths inside the containers, mapped to var/ as the volumes do.
    trainer = AdapterStoreSettings(url="s3://vispod-adapters/vispod", endpoint_url=endpoint,
                                   access_key_id=creds["VISPOD_ADAPTER_STORE_ACCESS_KEY_ID"],
                                   secret_access_key=creds["VISPOD_ADAPTER_STORE_SECRET_ACCESS_KEY"],
                                   keyring_dir=var / "keys" / "public" / "adapters",
                                   signing_key_file=var / "keys" / "trainer" / "trainer.key")
    folder = make_fake_adapter_files(tmp_path / "adapter", "generator-base")
    manifest = write_manifest(folder, name="story", version="1", base=BaseIdentity("generator-base", "r1", False),
                              dataset_sha256="0" * 64, hyperparameters={"lora_r": 4, "lora_alpha": 8.0}, metrics={},
                              code="test", target_modules=["q_proj"])
    stored = trainer.open().publish(folder, manifest, trainer.signer())
    assert stored.uri.startswith("s3://vispod-adapters/vispod/")
    got = trainer.open().fetch("story", "1", tmp_path / "fetched", trainer.keyring())
    assert sorted(got.files) == sorted(manifest["files"])
    wrong = trainer.model_copy(update={"secret_access_key": SecretStr("not-the-secret")})
    with pytest.raises(Exception, match=r"(?i)denied|forbidden|signature|403"):
        wrong.open().fetch("story", "1", tmp_path / "refused", trainer.keyring())
    assert not (tmp_path / "refused").exists()
    shutil.rmtree(tmp_path / "fetched")
    assert (var / SECRETS_ENV).is_file()
