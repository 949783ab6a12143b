"""The adapter store: signed, immutable, content-addressed LoRA versions on S3 or a local folder.

The trainer publishes (`AdapterStore.publish`, signed by the "trainer" key); every consumer — the generator's
installer, the adapter-sync service (vLLM's sidecar, TGI's init container) — reads through `AdapterStore.fetch`,
which checks the Ed25519 signature and every file's sha256 before anything reaches a path an engine loads from.
Which versions an engine holds is decided by lifecycle state (`retention`).
"""

from vispod.common.adapter_store.objects import (
    FilesystemObjects,
    ObjectMissing,
    S3Config,
    S3Objects,
    StoreUnavailable,
    open_objects,
)
from vispod.common.adapter_store.store import AdapterStore, StoredVersion, StoreRejected, check_manifest

__all__ = ["AdapterStore", "FilesystemObjects", "ObjectMissing", "S3Config", "S3Objects", "StoreRejected",
           "StoreUnavailable", "StoredVersion", "check_manifest", "open_objects"]
