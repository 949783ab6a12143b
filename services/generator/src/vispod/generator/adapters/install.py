"""Installing a published adapter: check the event, fetch into a temp folder, verify everything, rename into place.

Nothing half-copied or unverified ever sits at the final path; a copy found there (a crash between the rename
and the state save, or a restart) is kept only if it verifies against the same manifest.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from pathlib import Path

from vispod.common.base_identity import digest_mismatch
from vispod.generator.adapters.state import AdapterRecord
from vispod.generator.adapters.verify import (
    REQUIRED_FILES,
    AdapterRejected,
    ArtifactFetcherLike,
    BaseModelCheck,
    check_base_model,
    check_manifest,
    check_safetensors_header,
    read_adapter_config,
    same_base_model,
    verify_folder,
)
from vispod.generator.adapters.version import split_adapter_id
from vispod.v1 import events_pb2

log = logging.getLogger(__name__)


class Installer:
    def __init__(self, cache_dir: Path, base_model_id: str, fetcher: ArtifactFetcherLike,
                 base_model_check: BaseModelCheck = "name", base_model_digest: str = "") -> None:
        self.cache_dir = Path(cache_dir)
        self.base_model_id = base_model_id
        self.fetcher = fetcher
        self.base_model_check = base_model_check
        self.base_model_digest = base_model_digest
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def lock_for(self, adapter_id: str) -> threading.Lock:
        """One fetch per id at a time: a concurrent duplicate waits, then finds the registered record."""
        with self._locks_lock:
            return self._locks.setdefault(adapter_id, threading.Lock())

    def announces_another_base(self, msg: events_pb2.AdapterPublished) -> bool:
        """The event's own claim names a base model this generator does not serve: another pool's adapter."""
        return bool(msg.base_model_id) and not same_base_model(self.base_model_id, msg.base_model_id,
                                                                self.base_model_check)

    def check_event(self, msg: events_pb2.AdapterPublished) -> tuple[str, dict[str, str]]:
        """(adapter id, validated manifest) of an AdapterPublished for this base (see announces_another_base);
        AdapterRejected before any download."""
        try:
            name, version = split_adapter_id(msg.adapter_id)
        except ValueError as exc:
            raise AdapterRejected("bad_event", str(exc)) from exc
        if (msg.name and msg.name != name) or (msg.version and msg.version != version):
            raise AdapterRejected("bad_event", f"adapter_id {msg.adapter_id} disagrees with name/version "
                                               f"{msg.name!r}/{msg.version!r}")
        if not msg.artifact_uri:
            raise AdapterRejected("bad_event", "artifact_uri is empty")
        manifest = check_manifest(msg.file_sha256)
        if why := digest_mismatch(self.base_model_digest, msg.base_model_revision):
            raise AdapterRejected("base_model_mismatch", why)
        return msg.adapter_id, manifest

    def install(self, adapter_id: str, uri: str, manifest: dict[str, str], event_base: str) -> Path:
        name, version = split_adapter_id(adapter_id)
        final = self.cache_dir / name / version
        tmp_root = self.cache_dir / ".tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        tmp = tmp_root / uuid.uuid4().hex
        tmp.mkdir()
        try:
            self.fetcher.fetch(uri, list(manifest), tmp)
            self.verify(tmp, manifest, event_base)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                try:
                    self.verify(final, manifest, event_base)
                    return final
                except AdapterRejected:
                    shutil.rmtree(final)
            tmp.rename(final)
            return final
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def verify(self, folder: Path, manifest: dict[str, str], event_base: str) -> None:
        verify_folder(folder, manifest)
        for required in REQUIRED_FILES:
            if not (folder / required).is_file():
                raise AdapterRejected("missing_file", f"{required} is missing")
        config = read_adapter_config(folder)
        check_base_model(self.base_model_id, event_base, str(config.get("base_model_name_or_path") or ""),
                         self.base_model_check)
        check_safetensors_header(folder / "adapter_model.safetensors")

    def restore(self, rec: AdapterRecord) -> Path:
        """The record's local copy if it still verifies, else a fresh verified copy (AdapterRejected/OSError)."""
        try:
            self.verify(Path(rec.local_path), rec.file_sha256, rec.base_model_id)
            return Path(rec.local_path)
        except AdapterRejected as exc:
            log.warning("local adapter copy does not verify; fetching it again",
                        extra={"adapter_id": rec.adapter_id, "error": str(exc)})
        return self.install(rec.adapter_id, rec.artifact_uri, rec.file_sha256, rec.base_model_id)
