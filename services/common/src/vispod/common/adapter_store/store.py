"""Signed, immutable, content-addressed adapter versions on an object store (S3 or a folder).

Layout under the store URL:
  blobs/sha256/<hex>                       each file's bytes, keyed by their sha256 (shared between versions)
  adapters/<name>/<version>/signed.json    {"manifest": "<manifest JSON text>", "signature": {ed25519 block}}

The manifest names every file with its sha256, the base model (id + revision), the LoRA rank and the
training-data hash; the signature covers its exact bytes. A version exists once its signed record is written
(create-only), so a reader never sees half a version and nothing replaces one. `fetch` verifies the signature
against a keyring, then downloads each blob into a private temp folder and checks its sha256 there, and only then
moves the complete set into place: a tampered blob or record leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from vispod.common.adapter_store.objects import ObjectMissing, ObjectStore, StoreUnavailable
from vispod.common.artifacts import sha256_file
from vispod.common.signing import Keyring, SignatureInvalid, Signer

log = logging.getLogger(__name__)

FORMAT = "vispod.adapter/1"
SIGNER_IDENTITY = "trainer"            # the only identity whose manifests consumers accept
REQUIRED = ("adapter_id", "name", "version", "base_model_id", "base_model_revision", "lora_rank",
            "dataset_manifest_sha256", "files")
MAX_RECORD = 1 << 20
MAX_FILES = 64
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_FILE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


class StoreRejected(Exception):
    """A version that must not be used: bad signature, bad manifest, a file whose bytes do not match."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason   # bad_signature | bad_manifest | sha256_mismatch | missing_file | too_large | exists
        self.detail = detail


@dataclass(frozen=True)
class StoredVersion:
    adapter_id: str
    uri: str                        # <store url>/adapters/<name>/<version>
    manifest: dict[str, Any]
    manifest_sha256: str            # sha256 of the signed manifest bytes: the version's content address
    created: bool                   # False: this exact version was already published (an idempotent retry)

    @property
    def files(self) -> dict[str, str]:
        return dict(self.manifest["files"])


def record_key(name: str, version: str) -> str:
    return f"adapters/{check_part(name)}/{check_part(version)}/signed.json"


def blob_key(digest: str) -> str:
    return f"blobs/sha256/{digest}"


def check_part(part: str) -> str:
    if not _PART.match(part or "") or ".." in part:
        raise StoreRejected("bad_manifest", f"bad adapter name or version {part!r}")
    return part


def check_manifest(manifest: Any, adapter_id: str | None = None) -> dict[str, Any]:
    """The manifest's shape: required fields, safe file names, hex digests, an id matching its name@version."""
    if not isinstance(manifest, dict):
        raise StoreRejected("bad_manifest", "manifest is not an object")
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise StoreRejected("bad_manifest", f"manifest lacks {missing}")
    if manifest["adapter_id"] != f"{check_part(manifest['name'])}@{check_part(manifest['version'])}":
        raise StoreRejected("bad_manifest", "adapter_id is not name@version")
    if adapter_id is not None and manifest["adapter_id"] != adapter_id:
        raise StoreRejected("bad_manifest", f"record of {adapter_id} holds the manifest of {manifest['adapter_id']}")
    files = manifest["files"]
    if not isinstance(files, dict) or not files or len(files) > MAX_FILES:
        raise StoreRejected("bad_manifest", f"files must list 1..{MAX_FILES} files")
    for name, digest in files.items():
        parts = PurePosixPath(name).parts
        if (not isinstance(name, str) or name.startswith("/") or "\\" in name or not parts
                or any(not _FILE_PART.match(p) for p in parts)):
            raise StoreRejected("bad_manifest", f"unsafe file name {name!r}")
        if not isinstance(digest, str) or not _SHA.match(digest):
            raise StoreRejected("bad_manifest", f"sha256 of {name!r} is not 64 lower-case hex digits")
    if not isinstance(manifest["lora_rank"], int) or manifest["lora_rank"] < 1:
        raise StoreRejected("bad_manifest", "lora_rank must be a positive integer")
    return manifest


def open_record(raw: bytes, keyring: Keyring, adapter_id: str | None = None) -> tuple[dict[str, Any], bytes]:
    """(manifest, manifest bytes) of a signed record, after the signature is checked; StoreRejected otherwise."""
    try:
        record = json.loads(raw)
        text = record["manifest"]
        block = record["signature"]
        assert isinstance(text, str) and isinstance(block, dict)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise StoreRejected("bad_manifest", "signed record is not {manifest, signature}") from None
    payload = text.encode("utf-8")
    try:
        keyring.verify(payload, block, allowed={SIGNER_IDENTITY})
    except SignatureInvalid as exc:
        raise StoreRejected("bad_signature", str(exc)) from None
    try:
        manifest = json.loads(payload)
    except ValueError:
        raise StoreRejected("bad_manifest", "signed manifest is not JSON") from None
    return check_manifest(manifest, adapter_id), payload


class AdapterStore:
    def __init__(self, objects: ObjectStore, max_bytes: int = 8 * 1024**3) -> None:
        self.objects = objects
        self.max_bytes = max_bytes

    @property
    def url(self) -> str:
        return self.objects.url

    def uri(self, name: str, version: str) -> str:
        return f"{self.url}/adapters/{check_part(name)}/{check_part(version)}"

    def parse_uri(self, uri: str) -> tuple[str, str]:
        """(name, version) of a version URI of this store; StoreRejected for any other URI (no fetch elsewhere)."""
        prefix = self.url + "/adapters/"
        rest = uri.rstrip("/")[len(prefix):] if uri.startswith(prefix) else ""
        parts = rest.split("/")
        if len(parts) != 2:
            raise StoreRejected("bad_manifest", f"{uri} is not a version of the adapter store {self.url}")
        return check_part(parts[0]), check_part(parts[1])

    def owns(self, uri: str) -> bool:
        try:
            self.parse_uri(uri)
            return True
        except StoreRejected:
            return False

    # --- publishing --------------------------------------------------------------------------
    def publish(self, folder: Path, manifest: dict[str, Any], signer: Signer) -> StoredVersion:
        """Uploads the files the manifest lists (re-hashed here), then the signed record, create-only.

        Re-publishing the same manifest files is a no-op that returns the stored version (created=False);
        other files under an existing version raise StoreRejected("exists"). StoreUnavailable: try again
        later; the local folder is the only copy until then."""
        check_manifest(manifest)
        if signer.identity != SIGNER_IDENTITY:
            raise StoreRejected("bad_signature", f"manifests are signed by {SIGNER_IDENTITY!r}, not "
                                                 f"{signer.identity!r}")
        folder = Path(folder)
        for name, digest in manifest["files"].items():
            actual = sha256_file(folder / name)
            if actual != digest:
                raise StoreRejected("sha256_mismatch", f"{name}: the folder's bytes are not the manifest's")
        key = record_key(manifest["name"], manifest["version"])
        existing = self._existing(key)
        if existing is not None:
            return self._same_or_refuse(existing, manifest)
        for name, digest in manifest["files"].items():
            self.objects.put_if_absent(blob_key(digest), folder / name)
        text = json.dumps(manifest, indent=1, sort_keys=True)
        record = json.dumps({"manifest": text, "signature": signer.signature_block_bytes(text.encode())},
                            sort_keys=True).encode()
        if not self.objects.put_if_absent(key, record):  # another publisher won the race
            return self._same_or_refuse(self.objects.get_bytes(key, MAX_RECORD), manifest)
        return StoredVersion(manifest["adapter_id"], self.uri(manifest["name"], manifest["version"]), manifest,
                             _sha(text.encode()), True)

    def _existing(self, key: str) -> bytes | None:
        try:
            return self.objects.get_bytes(key, MAX_RECORD)
        except ObjectMissing:
            return None

    def _same_or_refuse(self, raw: bytes, manifest: dict[str, Any]) -> StoredVersion:
        try:
            earlier = json.loads(json.loads(raw)["manifest"])
        except (ValueError, KeyError, TypeError):
            earlier = {}
        if earlier.get("files") != manifest["files"]:
            raise StoreRejected("exists", f"{manifest['adapter_id']} is already published with other files; "
                                          "versions are never overwritten")
        log.warning("adapter version already published with identical files", extra={
            "adapter_id": manifest["adapter_id"]})
        text = json.loads(raw)["manifest"]
        return StoredVersion(earlier["adapter_id"], self.uri(earlier["name"], earlier["version"]), earlier,
                             _sha(text.encode()), False)

    # --- reading -----------------------------------------------------------------------------
    def versions(self, name: str) -> list[str]:
        prefix = f"adapters/{check_part(name)}/"
        return sorted({k[len(prefix):].split("/")[0] for k in self.objects.list_keys(prefix)
                       if k.endswith("/signed.json")})

    def names(self) -> list[str]:
        return sorted({k.split("/")[1] for k in self.objects.list_keys("adapters/") if k.endswith("/signed.json")})

    def manifest(self, name: str, version: str, keyring: Keyring) -> tuple[dict[str, Any], str]:
        """The verified manifest and its sha256 (no files downloaded)."""
        try:
            raw = self.objects.get_bytes(record_key(name, version), MAX_RECORD)
        except ObjectMissing:
            raise StoreRejected("missing_file", f"{name}@{version} is not published") from None
        manifest, payload = open_record(raw, keyring, f"{name}@{version}")
        return manifest, _sha(payload)

    def fetch(self, name: str, version: str, dest: Path, keyring: Keyring) -> StoredVersion:
        """Verified files of name@version into `dest` (which must not exist yet): exactly the manifest's files,
        each checked against its signed sha256. Nothing is left at `dest` unless everything verified."""
        started = time.monotonic()
        dest = Path(dest)
        if dest.exists():
            raise FileExistsError(dest)
        manifest, manifest_sha = self.manifest(name, version, keyring)
        staging = dest.parent / f".fetch-{uuid.uuid4().hex}"
        total = 0
        try:
            for file, digest in manifest["files"].items():
                try:
                    actual = self.objects.download(blob_key(digest), staging / file, self.max_bytes - total)
                except ObjectMissing:
                    raise StoreRejected("missing_file", f"{file} (blob {digest[:16]}…) is missing") from None
                except ValueError as exc:
                    raise StoreRejected("too_large", str(exc)) from None
                if actual != digest:
                    raise StoreRejected("sha256_mismatch", f"{file}: sha256 {actual[:16]}… != signed "
                                                           f"{digest[:16]}…")
                total += (staging / file).stat().st_size
            staging.rename(dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("adapter version fetched and verified", extra={
            "adapter_id": manifest["adapter_id"], "bytes": total,
            "seconds": round(time.monotonic() - started, 3)})
        return StoredVersion(manifest["adapter_id"], self.uri(name, version), manifest, manifest_sha, False)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


__all__ = ["AdapterStore", "StoreRejected", "StoreUnavailable", "StoredVersion", "check_manifest", "open_record"]
