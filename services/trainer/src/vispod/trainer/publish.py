"""Publishing: adapter files + manifest → the adapter store (immutable, signed version) → AdapterPublished on Kafka.

A version is never overwritten. A retry after a failure between storing and announcing finds its own identical
files already stored and announces them again with the same event id (consumers de-duplicate by id); a different
adapter under an existing version is refused.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from vispod.common.adapter_store import AdapterStore, StoredVersion, StoreRejected, StoreUnavailable
from vispod.common.artifacts import ArtifactExists, ArtifactStore, sha256_file
from vispod.common.base_identity import weights_digest
from vispod.common.embedded_models import resolve_gguf
from vispod.common.events import derived_id
from vispod.common.random_weights import has_random_weights
from vispod.common.signing import Signer
from vispod.common.topics import Topic
from vispod.v1 import events_pb2

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class PublishError(RuntimeError):
    pass


@dataclass(frozen=True)
class BaseIdentity:
    model_id: str
    revision: str
    random_weights: bool


def base_identity(path: Path, model_id: str = "", revision: str = "") -> BaseIdentity:
    """Names the base model: explicit settings win; a Hugging Face cache snapshot path gives repo id and commit;
    otherwise the folder name and a sha256 over config.json and the weight index (or the weights if unsharded)."""
    path = Path(path).resolve()
    parts = path.parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i > 0 and parts[i - 1].startswith("models--") and i + 1 < len(parts):
            model_id = model_id or parts[i - 1][len("models--"):].replace("--", "/")
            revision = revision or parts[i + 1]
    if not model_id:
        model_id = path.name
    if not revision:
        revision = weights_digest(path)
    return BaseIdentity(model_id, revision, has_random_weights(path))


def code_version(override: str = "") -> str:
    """git describe of the checkout this code runs from, else the installed package version."""
    if override:
        return override
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            return "git:" + out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return "vispod-trainer==" + package_version("vispod-trainer")
    except PackageNotFoundError:
        return "unknown"


def next_version(store: ArtifactStore | AdapterStore, name: str, scheme: str) -> str:
    """"increment": one more than the highest integer version in the store (1 for the first); else a UTC stamp."""
    if scheme == "timestamp":
        return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    numbers = [int(v) for v in store.versions(name) if v.isdigit()]
    return str(max(numbers, default=0) + 1)


def write_manifest(adapter_dir: Path, *, name: str, version: str, base: BaseIdentity, dataset_sha256: str,
                   hyperparameters: dict[str, Any], metrics: dict[str, float], code: str,
                   target_modules: list[str]) -> dict[str, Any]:
    missing = [f for f in ADAPTER_FILES if not (adapter_dir / f).is_file()]
    if missing:
        raise PublishError(f"adapter folder {adapter_dir} lacks {missing}")
    files = {p.relative_to(adapter_dir).as_posix(): sha256_file(p)
             for p in sorted(adapter_dir.rglob("*")) if p.is_file() and p.name != MANIFEST}
    manifest = {
        "format": "vispod.adapter/1", "lora_rank": int(hyperparameters["lora_r"]),
        "adapter_id": f"{name}@{version}", "name": name, "version": version,
        "base_model_id": base.model_id, "base_model_revision": base.revision,
        "base_model_random_weights": base.random_weights,
        "dataset_manifest_sha256": dataset_sha256, "hyperparameters": hyperparameters,
        "target_modules": target_modules, "metrics": metrics, "code_version": code,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "files": files,
    }
    (adapter_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return manifest


def verify_stored(folder: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """Re-hashes the stored copy against the manifest; returns file -> sha256 for the event (manifest included)."""
    stored = {}
    for rel, expected in manifest["files"].items():
        actual = sha256_file(folder / rel)
        if actual != expected:
            raise PublishError(f"stored {rel} has sha256 {actual}, manifest says {expected}")
        stored[rel] = actual
    stored[MANIFEST] = sha256_file(folder / MANIFEST)
    return stored


def build_event(manifest: dict[str, Any], artifact_uri: str, file_sha256: dict[str, str]) -> Any:
    hp = manifest["hyperparameters"]
    ts = Timestamp()
    ts.FromNanoseconds(time.time_ns())
    metrics = {k: float(v) for k, v in manifest["metrics"].items() if isinstance(v, int | float) and v == v}
    return events_pb2.AdapterPublished(
        adapter_id=manifest["adapter_id"], name=manifest["name"], version=manifest["version"],
        base_model_id=manifest["base_model_id"], base_model_revision=manifest["base_model_revision"],
        artifact_uri=artifact_uri, file_sha256=file_sha256, lora_rank=int(hp["lora_r"]),
        lora_alpha=float(hp["lora_alpha"]), target_modules=list(manifest["target_modules"]),
        training_metrics=metrics, dataset_manifest_sha256=manifest["dataset_manifest_sha256"],
        code_version=manifest["code_version"], published_at=ts)


def event_id(adapter_id: str) -> str:
    """Deterministic, so a re-announcement of the same version is recognisably the same event."""
    return derived_id("adapter.published", 0, salt=adapter_id)


def store_adapter(store: ArtifactStore, adapter_dir: Path, manifest: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """put_dir (never overwrites); an identical earlier copy of this very adapter counts as stored."""
    name, ver = manifest["name"], manifest["version"]
    try:
        uri = store.put_dir(adapter_dir, name, ver)
    except ArtifactExists:
        folder = store.root / name / ver
        try:
            earlier = json.loads((folder / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError):
            earlier = {}
        if earlier.get("files") != manifest["files"]:
            raise PublishError(f"{name}@{ver} is already published with other files; versions are never "
                               "overwritten: choose another version") from None
        log.warning("adapter version already stored with identical files: announcing it again",
                    extra={"adapter_id": manifest["adapter_id"]})
        uri = folder.as_uri()
        manifest = earlier
    return uri, verify_stored(store.path(uri), manifest)


def publish_adapter(*, store: ArtifactStore | AdapterStore, publisher: Any | None, adapter_dir: Path,
                    manifest: dict[str, Any], signer: Signer | None = None, attempts: int = 6) -> Any:
    """Stores the adapter folder and announces it; returns the AdapterPublished message.

    An AdapterStore (S3 or folder) gets a signed, content-addressed version (`signer` required); a plain
    ArtifactStore folder is the unsigned local layout."""
    if isinstance(store, AdapterStore):
        if signer is None:
            raise PublishError("the adapter store needs a signing key (VISPOD_ADAPTER_STORE_SIGNING_KEY_FILE)")
        stored = store_signed(store, signer, adapter_dir, manifest, attempts=attempts)
        event = build_event(stored.manifest, stored.uri, stored.files)
    else:
        uri, hashes = store_adapter(store, adapter_dir, manifest)
        event = build_event(json.loads((store.path(uri) / MANIFEST).read_text()), uri, hashes)
    if publisher is not None:
        publisher.publish(Topic.ADAPTER_PUBLISHED, event, event_id=event_id(event.adapter_id))
    return event


def store_signed(store: AdapterStore, signer: Signer, adapter_dir: Path, manifest: dict[str, Any], *,
                 attempts: int = 6, backoff_s: float = 2.0) -> StoredVersion:
    """Signs and uploads the version, retrying while the store is unavailable (the adapter folder stays the
    local copy until then; a retry of a version that did land is a no-op). A version that exists with other
    files is refused (PublishError)."""
    for attempt in range(1, attempts + 1):
        try:
            started = time.monotonic()
            stored = store.publish(adapter_dir, manifest, signer)
            log.info("adapter version published", extra={
                "adapter_id": stored.adapter_id, "uri": stored.uri, "new_version": stored.created,
                "seconds": round(time.monotonic() - started, 3)})
            return stored
        except StoreRejected as exc:
            raise PublishError(str(exc)) from exc
        except StoreUnavailable as exc:
            if attempt == attempts:
                raise
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning("adapter store unavailable: publishing delayed, the adapter stays in its folder", extra={
                "adapter_id": manifest["adapter_id"], "error": str(exc), "retry_in_s": delay, "attempt": attempt})
            time.sleep(delay)
    raise AssertionError("unreachable")


def check_name(name: str, version: str = "") -> None:
    if not _NAME_RE.match(name):
        raise PublishError(f"bad adapter name {name!r}: lower-case letters, digits, '.', '_', '-'")
    if version and not _VERSION_RE.match(version):
        raise PublishError(f"bad adapter version {version!r}: letters, digits, '.', '_', '-'")


def text_base_identity(name_or_path: Path | str, model_id: str = "") -> BaseIdentity:
    """A text-only GGUF base: named like the generator names it (`smollm2`, or the file's name), revision = the
    GGUF file's sha256. Embedded models are real weights."""
    path = resolve_gguf(name_or_path)
    return BaseIdentity(model_id or Path(str(name_or_path)).name, weights_digest(path), False)
