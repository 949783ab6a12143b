"""The trainer's signed version on the real S3 server and its announcement on the real broker, as every consumer
(the generator's fetcher) sees it: verified, or rejected with nothing fetched."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import count_published, overwrite, record

from vispod.common.adapter_store.store import blob_key, record_key
from vispod.common.artifacts import sha256_file
from vispod.common.bus import EventReader
from vispod.common.topics import Topic
from vispod.generator.adapters.verify import AdapterRejected, ArtifactFetcher
from vispod.v1 import events_pb2


def test_trainer_publishes_a_signed_content_addressed_version(published, keyring) -> None:
    outcome, env, kafka, _ = published
    reader = EventReader(kafka, [Topic.ADAPTER_PUBLISHED])
    try:
        [msg] = reader.read(1, timeout=60)
    finally:
        reader.close()
    event = msg.message
    assert isinstance(event, events_pb2.AdapterPublished) and event == outcome.event
    store = env.open()
    assert event.adapter_id == "podcast@1" and event.artifact_uri == f"{store.url}/adapters/podcast/1"
    manifest, manifest_sha = store.manifest("podcast", "1", keyring)   # signature checked
    assert dict(event.file_sha256) == manifest["files"]
    assert manifest["base_model_id"] == "smollm2" and manifest["base_model_revision"].startswith("sha256:")
    assert manifest["lora_rank"] == event.lora_rank == 4
    assert manifest["dataset_manifest_sha256"] == event.dataset_manifest_sha256 != ""
    for name, digest in manifest["files"].items():  # content-addressed: each file under its own sha256
        assert digest == sha256_file(outcome.result.adapter_dir / name)
        assert blob_key(digest) in store.objects.list_keys("blobs/")
    record(manifest_sha256=manifest_sha[:16])


def test_the_generator_fetches_only_what_verifies(published, keyring, tmp_path: Path) -> None:
    outcome, env, _, _ = published
    store = env.open()
    fetcher = ArtifactFetcher(store=store, keyring=keyring)
    event = outcome.event
    started = time.monotonic()
    fetcher.fetch(event.artifact_uri, list(event.file_sha256), tmp_path / "ok")
    record(fetch_verify_s=round(time.monotonic() - started, 3),
           adapter_bytes=sum(p.stat().st_size for p in (tmp_path / "ok").iterdir()))
    assert {p.name: sha256_file(p) for p in (tmp_path / "ok").iterdir()} == dict(event.file_sha256)

    # The same files under a second version, then tampered in the bucket: rejected, nothing lands.
    manifest = dict(outcome.manifest, version="2", adapter_id="podcast@2")
    from vispod.trainer.publish import publish_adapter

    publish_adapter(store=store, publisher=None, adapter_dir=outcome.result.adapter_dir, manifest=manifest,
                    signer=env.signer())
    count_published()
    raw = json.loads(store.objects.get_bytes(record_key("podcast", "2"), 1 << 20))
    edited = json.loads(raw["manifest"])
    edited["base_model_id"] = "another-base"
    overwrite(env, record_key("podcast", "2"), json.dumps({**raw, "manifest": json.dumps(edited)}).encode())
    (tmp_path / "bad-sig").mkdir()
    with pytest.raises(AdapterRejected) as err:
        fetcher.fetch(f"{store.url}/adapters/podcast/2", list(event.file_sha256), tmp_path / "bad-sig")
    assert err.value.reason == "bad_signature" and list((tmp_path / "bad-sig").iterdir()) == []

    weights = event.file_sha256["adapter_model.safetensors"]
    good = store.objects.get_bytes(blob_key(weights), 1 << 30)
    overwrite(env, blob_key(weights), good[:-8] + b"\x00" * 8)
    try:
        (tmp_path / "tampered").mkdir()
        with pytest.raises(AdapterRejected) as err:
            fetcher.fetch(event.artifact_uri, list(event.file_sha256), tmp_path / "tampered")
        assert err.value.reason == "sha256_mismatch" and list((tmp_path / "tampered").iterdir()) == []
    finally:
        overwrite(env, blob_key(weights), good)
    record(tampered_rejected=True)

    # With a keyring, nothing outside the store is taken, not even a folder on local disk.
    (tmp_path / "unsigned").mkdir()
    with pytest.raises(AdapterRejected, match="not a signed version"):
        fetcher.fetch(outcome.result.adapter_dir.as_uri(), list(event.file_sha256), tmp_path / "unsigned")
