"""The adapter store on a real S3 server (S3Proxy) and on a folder: signed, immutable, content-addressed versions."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vispod.common.adapter_store import AdapterStore, S3Config, S3Objects, StoreRejected, StoreUnavailable
from vispod.common.adapter_store.objects import FilesystemObjects
from vispod.common.adapter_store.settings import AdapterStoreSettings
from vispod.common.adapter_store.store import blob_key, record_key
from vispod.common.artifacts import sha256_file
from vispod.common.signing import Keyring, Signer
from vispod.devkit.local_s3 import S3Server, start_s3

TRAINER = Signer(Ed25519PrivateKey.generate(), "trainer")
KEYRING = Keyring({"trainer": TRAINER.public_key})


def adapter_folder(root: Path, seed: int) -> Path:
    folder = root / f"adapter-{seed}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "seed": seed}))
    (folder / "adapter_model.safetensors").write_bytes(bytes([seed % 256]) * 4096)
    return folder


def manifest_for(folder: Path, name: str, version: str) -> dict:
    return {"adapter_id": f"{name}@{version}", "name": name, "version": version, "base_model_id": "tiny",
            "base_model_revision": "sha256:" + "0" * 64, "lora_rank": 4, "dataset_manifest_sha256": "d" * 64,
            "files": {p.name: sha256_file(p) for p in sorted(folder.iterdir())}}


def s3_client(server: S3Server):
    return boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=server.access_key_id, aws_secret_access_key=server.secret_access_key)


@pytest.fixture(params=["s3", "fs"])
def store(request, s3_server: S3Server, tmp_path: Path) -> AdapterStore:
    if request.param == "fs":
        return AdapterStore(FilesystemObjects(tmp_path / "store"))
    bucket = f"b{uuid.uuid4().hex[:10]}"
    s3_server.create_bucket(bucket)
    settings = AdapterStoreSettings(url=f"s3://{bucket}/adapters-prefix", endpoint_url=s3_server.endpoint_url,
                                    access_key_id=s3_server.access_key_id,
                                    secret_access_key=s3_server.secret_access_key)
    return settings.open()


def tamper(store: AdapterStore, key: str, data: bytes, s3_server: S3Server) -> None:
    """What an attacker with write access to the bucket could do: replace an object's bytes."""
    if isinstance(store.objects, S3Objects):
        s3_client(s3_server).put_object(Bucket=store.objects.bucket, Key=f"{store.objects.prefix}/{key}", Body=data)
    else:
        path = store.objects.root / key
        path.chmod(0o644)
        path.write_bytes(data)


def test_publish_then_fetch_verified(store: AdapterStore, tmp_path: Path):
    folder = adapter_folder(tmp_path, 1)
    manifest = manifest_for(folder, "pod", "1")
    stored = store.publish(folder, manifest, TRAINER)
    assert stored.created and stored.uri == f"{store.url}/adapters/pod/1" and store.owns(stored.uri)
    assert store.parse_uri(stored.uri) == ("pod", "1")
    assert store.versions("pod") == ["1"] and store.names() == ["pod"]
    got = store.fetch("pod", "1", tmp_path / "out", KEYRING)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(manifest["files"])
    for name, digest in manifest["files"].items():
        assert sha256_file(tmp_path / "out" / name) == digest
    assert got.manifest == manifest and got.manifest_sha256 == stored.manifest_sha256


def test_versions_are_immutable_and_blobs_shared(store: AdapterStore, tmp_path: Path):
    folder = adapter_folder(tmp_path, 2)
    store.publish(folder, manifest_for(folder, "pod", "1"), TRAINER)
    again = store.publish(folder, manifest_for(folder, "pod", "1"), TRAINER)
    assert not again.created  # an idempotent retry
    other = adapter_folder(tmp_path, 3)
    with pytest.raises(StoreRejected, match="already published") as err:
        store.publish(other, manifest_for(other, "pod", "1"), TRAINER)
    assert err.value.reason == "exists"
    store.publish(folder, manifest_for(folder, "pod", "2"), TRAINER)  # same bytes, new version: same blobs
    blobs = [k for k in store.objects.list_keys("blobs/")]
    assert len(blobs) == 2
    store.fetch("pod", "1", tmp_path / "v1", KEYRING)  # the first version is untouched
    assert (tmp_path / "v1" / "adapter_model.safetensors").read_bytes() == bytes([2]) * 4096


def test_tampered_blob_is_rejected_and_nothing_lands(store: AdapterStore, tmp_path: Path, s3_server: S3Server):
    folder = adapter_folder(tmp_path, 4)
    manifest = manifest_for(folder, "pod", "1")
    store.publish(folder, manifest, TRAINER)
    tamper(store, blob_key(manifest["files"]["adapter_model.safetensors"]), b"\x00" * 4096, s3_server)
    with pytest.raises(StoreRejected) as err:
        store.fetch("pod", "1", tmp_path / "out", KEYRING)
    assert err.value.reason == "sha256_mismatch"
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fetch-")]


def test_bad_signature_is_rejected(store: AdapterStore, tmp_path: Path, s3_server: S3Server):
    folder = adapter_folder(tmp_path, 5)
    manifest = manifest_for(folder, "pod", "1")
    store.publish(folder, manifest, TRAINER)
    raw = json.loads(store.objects.get_bytes(record_key("pod", "1"), 1 << 20))
    edited = json.loads(raw["manifest"])
    edited["base_model_id"] = "another-base"
    tamper(store, record_key("pod", "1"), json.dumps({**raw, "manifest": json.dumps(edited)}).encode(), s3_server)
    with pytest.raises(StoreRejected, match="does not match") as err:
        store.fetch("pod", "1", tmp_path / "out", KEYRING)
    assert err.value.reason == "bad_signature" and not (tmp_path / "out").exists()
    # Re-signed by a key nobody trusts, even under the trainer's name:
    forger = Signer(Ed25519PrivateKey.generate(), "trainer")
    text = json.dumps(edited)
    tamper(store, record_key("pod", "1"), json.dumps(
        {"manifest": text, "signature": forger.signature_block_bytes(text.encode())}).encode(), s3_server)
    with pytest.raises(StoreRejected, match="untrusted key"):
        store.fetch("pod", "1", tmp_path / "out", KEYRING)
    # Signed by a trusted key of another identity (a gate key cannot publish adapters):
    gate = Signer(Ed25519PrivateKey.generate(), "gate")
    ring = Keyring({"trainer": TRAINER.public_key, "gate": gate.public_key})
    tamper(store, record_key("pod", "1"), json.dumps(
        {"manifest": text, "signature": gate.signature_block_bytes(text.encode())}).encode(), s3_server)
    with pytest.raises(StoreRejected, match="may not sign"):
        store.fetch("pod", "1", tmp_path / "out", ring)
    with pytest.raises(StoreRejected, match="signed by 'trainer'"):
        store.publish(folder, manifest_for(folder, "pod", "9"), gate)


def test_manifest_must_match_the_folder_and_be_complete(store: AdapterStore, tmp_path: Path):
    folder = adapter_folder(tmp_path, 6)
    manifest = manifest_for(folder, "pod", "1")
    (folder / "adapter_model.safetensors").write_bytes(b"changed after hashing")
    with pytest.raises(StoreRejected) as err:
        store.publish(folder, manifest, TRAINER)
    assert err.value.reason == "sha256_mismatch"
    for bad in ({"files": {"../x": "0" * 64}}, {"lora_rank": 0}, {"adapter_id": "pod@2"}):
        with pytest.raises(StoreRejected):
            store.publish(folder, {**manifest, **bad}, TRAINER)
    with pytest.raises(StoreRejected, match="not published"):
        store.fetch("pod", "7", tmp_path / "out", KEYRING)
    with pytest.raises(StoreRejected, match="not a version"):
        store.parse_uri("s3://elsewhere/adapters/pod/1")


def test_outage_delays_but_loses_nothing(s3_server: S3Server, tmp_path: Path):
    """A stopped S3 server: publishing and fetching fail as unavailable (retry later); after the restart the
    earlier versions are intact and the delayed version publishes."""
    own = start_s3(tmp_path / "own-s3")
    try:
        own.create_bucket("adapters")
        store = AdapterStore(S3Objects("adapters", "", S3Config(own.endpoint_url, access_key_id=own.access_key_id,
                                                                secret_access_key=own.secret_access_key,
                                                                connect_timeout_s=1, attempts=2)))
        first = adapter_folder(tmp_path, 7)
        store.publish(first, manifest_for(first, "pod", "1"), TRAINER)
        own.stop()
        second = adapter_folder(tmp_path, 8)
        with pytest.raises(StoreUnavailable):
            store.publish(second, manifest_for(second, "pod", "2"), TRAINER)
        with pytest.raises(StoreUnavailable):
            store.fetch("pod", "1", tmp_path / "during", KEYRING)
        assert not (tmp_path / "during").exists()
        start_s3(server=own)
        assert store.versions("pod") == ["1"]
        assert store.publish(second, manifest_for(second, "pod", "2"), TRAINER).created
        store.fetch("pod", "1", tmp_path / "v1", KEYRING)
        store.fetch("pod", "2", tmp_path / "v2", KEYRING)
        assert store.versions("pod") == ["1", "2"]
    finally:
        own.stop()


def test_wrong_credentials_are_not_an_outage(s3_server: S3Server):
    s3_server.create_bucket("creds")
    store = AdapterStore(S3Objects("creds", "", S3Config(s3_server.endpoint_url, access_key_id="nobody",
                                                         secret_access_key="wrong")))
    with pytest.raises(Exception) as err:
        store.versions("pod")
    assert not isinstance(err.value, StoreUnavailable)
