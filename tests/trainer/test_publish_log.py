"""Publishing to the signed adapter store with INFO logging on, as in a trainer pod.

Found on the local Kubernetes cluster (make k8s-e2e): the trainer Job stored its version in S3, then failed on the
log line that announces it ("Attempt to overwrite 'created' in LogRecord": `created` is a LogRecord attribute), so
no AdapterPublished event followed and every retry of the Job failed the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vispod.common.adapter_store.objects import FilesystemObjects
from vispod.common.adapter_store.store import AdapterStore
from vispod.common.artifacts import sha256_file
from vispod.common.signing import Signer, generate_keypair
from vispod.trainer.publish import store_signed


def test_store_signed_logs_the_published_version(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 4}')
    key, _ = generate_keypair(tmp_path / "keys", "trainer")
    manifest = {"adapter_id": "vispod-dialogue@v1", "name": "vispod-dialogue", "version": "v1",
                "base_model_id": "smollm2", "base_model_revision": "r1", "lora_rank": 4,
                "dataset_manifest_sha256": "0" * 64,
                "files": {"adapter_config.json": sha256_file(adapter / "adapter_config.json")}}
    store = AdapterStore(FilesystemObjects(tmp_path / "store"))
    with caplog.at_level(logging.INFO, logger="vispod.trainer.publish"):
        stored = store_signed(store, Signer.from_file(key, "trainer"), adapter, manifest, attempts=1)
    assert stored.adapter_id == "vispod-dialogue@v1"
    record = next(r for r in caplog.records if r.getMessage() == "adapter version published")
    assert record.adapter_id == "vispod-dialogue@v1" and record.uri == stored.uri
