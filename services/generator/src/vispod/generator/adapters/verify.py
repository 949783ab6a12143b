"""Fetching an adapter artifact and deciding whether it may be used.

Nothing the event says is trusted: file names are checked for traversal, only the listed files are
copied, every file's sha256 is recomputed on the copy (the bytes that will be loaded, not the source),
nothing else may sit in the folder, and the adapter must have been trained on this generator's base.
Versions of the adapter store are signed (Ed25519): their signature is checked before any byte is fetched.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol
from urllib.parse import unquote, urlparse

from vispod.common.adapter_store import AdapterStore, StoreRejected
from vispod.common.adapter_store.settings import AdapterStoreSettings
from vispod.common.artifacts import sha256_file
from vispod.common.signing import Keyring

log = logging.getLogger(__name__)

REQUIRED_FILES = ("adapter_model.safetensors", "adapter_config.json")
MAX_FILES = 64
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")

BaseModelCheck = Literal["strict", "name", "off"]

# Label values of vispod_generator_adapter_load_failures_total: a small fixed set.
REASONS = ("bad_event", "bad_path", "missing_file", "unlisted_file", "too_large", "fetch_error",
           "sha256_mismatch", "bad_config", "bad_weights", "base_model_mismatch", "id_conflict",
           "engine_load", "restore", "bad_signature")


class AdapterRejected(Exception):
    """The artifact must not be used; `reason` is one of REASONS, the message says what was wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ArtifactFetcherLike(Protocol):
    def fetch(self, uri: str, names: Iterable[str], dest: Path) -> None:
        """Copies each listed file of the artifact folder `uri` to dest/<name>; raises AdapterRejected
        for a permanent problem (missing file, forbidden location), OSError for a transient one."""


def check_manifest(file_sha256: Mapping[str, str]) -> dict[str, str]:
    """The event's file -> sha256 map, validated: safe relative names, hex digests, required files."""
    if not file_sha256:
        raise AdapterRejected("bad_event", "file_sha256 is empty")
    if len(file_sha256) > MAX_FILES:
        raise AdapterRejected("bad_event", f"{len(file_sha256)} files listed (at most {MAX_FILES})")
    clean: dict[str, str] = {}
    for name, digest in file_sha256.items():
        parts = PurePosixPath(name).parts
        if (not name or "\\" in name or "\x00" in name or name.startswith("/") or not parts
                or any(p in (".", "..") or not _NAME_PART.match(p) for p in parts)):
            raise AdapterRejected("bad_path", f"unsafe file name {name!r}")
        if not _SHA256.match(digest.lower()):
            raise AdapterRejected("bad_event", f"sha256 of {name!r} is not 64 hex digits")
        clean[name] = digest.lower()
    missing = [f for f in REQUIRED_FILES if f not in clean]
    if missing:
        raise AdapterRejected("missing_file", f"event lists no {', '.join(missing)}")
    return clean


def verify_folder(folder: Path, manifest: Mapping[str, str]) -> None:
    """Exactly the manifest's files, each regular (no symlinks) with the listed sha256."""
    present = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if not p.is_dir() or p.is_symlink()}
    unlisted = sorted(set(present) - set(manifest))
    if unlisted:
        raise AdapterRejected("unlisted_file", f"files not in the manifest: {unlisted[:5]}")
    for name, expected in manifest.items():
        path = present.get(name)
        if path is None:
            raise AdapterRejected("missing_file", f"{name} is missing")
        if path.is_symlink() or not path.is_file():
            raise AdapterRejected("bad_path", f"{name} is not a regular file")
        actual = sha256_file(path)
        if actual != expected:
            raise AdapterRejected("sha256_mismatch", f"{name}: sha256 {actual[:16]}… != published {expected[:16]}…")


def read_adapter_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterRejected("bad_config", f"adapter_config.json is not JSON: {exc}") from exc
    if not isinstance(config, dict) or not config.get("peft_type"):
        raise AdapterRejected("bad_config", "adapter_config.json has no peft_type")
    return config


def check_safetensors_header(path: Path, max_header: int = 100 * 1024 * 1024) -> None:
    """Cheap structural check (8-byte length + JSON header) so a corrupt file fails here, not in the model."""
    try:
        with path.open("rb") as f:
            raw = f.read(8)
            (length,) = struct.unpack("<Q", raw) if len(raw) == 8 else (0,)
            if not 2 <= length <= max_header:
                raise AdapterRejected("bad_weights", f"{path.name}: implausible safetensors header length {length}")
            header = json.loads(f.read(length))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterRejected("bad_weights", f"{path.name}: unreadable safetensors header: {exc}") from exc
    if not isinstance(header, dict) or not any(k != "__metadata__" for k in header):
        raise AdapterRejected("bad_weights", f"{path.name} holds no tensors")


def normalise_model_id(model_id: str) -> str:
    """'/models/Qwen3-VL-8B-Instruct/', 'Qwen/Qwen3-VL-8B-Instruct' and a Hugging Face cache snapshot
    '…/models--Qwen--Qwen3-VL-8B-Instruct/snapshots/<commit>' all -> 'qwen3-vl-8b-instruct'."""
    parts = [p for p in model_id.strip().split("/") if p]
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i > 0 and parts[i - 1].startswith("models--"):
            return parts[i - 1].rsplit("--", 1)[-1].lower()
    return parts[-1].lower() if parts else ""


def same_base_model(ours: str, theirs: str, mode: BaseModelCheck) -> bool:
    """Does `theirs` name the base model this generator serves, under the check mode?"""
    if mode == "off":
        return True
    return theirs == ours if mode == "strict" else normalise_model_id(theirs) == normalise_model_id(ours)


def check_base_model(ours: str, event_base: str, config_base: str, mode: BaseModelCheck) -> None:
    """Every base model the artifact names (event and adapter_config.json) must be ours."""
    if mode == "off":
        return
    named = [b for b in (event_base, config_base) if b]
    if not named:
        raise AdapterRejected("base_model_mismatch", "neither the event nor adapter_config.json names a base model")
    for theirs in named:
        if not same_base_model(ours, theirs, mode):
            raise AdapterRejected("base_model_mismatch", f"adapter was trained on {theirs!r}, this generator serves "
                                                         f"{ours!r} (check: {mode})")


_FROM_ENV = object()
# The adapter store's reasons, as this module's.
_STORE_REASONS = {"bad_signature": "bad_signature", "sha256_mismatch": "sha256_mismatch",
                  "missing_file": "missing_file", "too_large": "too_large", "bad_manifest": "bad_event",
                  "exists": "bad_event"}


class ArtifactFetcher:
    """Versions of the signed adapter store (S3 or a folder: the signature and every hash are checked by
    `AdapterStore.fetch`) and, only where no keyring is configured, unsigned file:// folders (optionally confined
    to `file_roots`) for local use. With a keyring, anything that is not a version of the store is refused.

    store/keyring default to VISPOD_ADAPTER_STORE_* (URL, endpoint, credentials, keyring folder)."""

    def __init__(self, file_roots: Sequence[Path] = (), max_bytes: int = 8 * 1024**3, *,
                 store: AdapterStore | object | None = _FROM_ENV,
                 keyring: Keyring | object | None = _FROM_ENV) -> None:
        self.file_roots = [Path(r).expanduser().resolve() for r in file_roots]
        self.max_bytes = max_bytes
        if store is _FROM_ENV or keyring is _FROM_ENV:
            env = AdapterStoreSettings()
            store = (env.open() if env.url else None) if store is _FROM_ENV else store
            keyring = (env.keyring() if env.keyring_dir or env.url else None) if keyring is _FROM_ENV else keyring
        self.store: AdapterStore | None = store  # type: ignore[assignment]
        self.keyring: Keyring | None = keyring  # type: ignore[assignment]
        if self.store is not None and self.keyring is None:
            raise ValueError("an adapter store needs a keyring (VISPOD_ADAPTER_STORE_KEYRING_DIR) to verify it")
        if self.keyring is None:
            log.warning("no adapter keyring configured: unsigned local adapter folders are accepted (local use only)")

    def fetch(self, uri: str, names: Iterable[str], dest: Path) -> None:
        if self.store is not None and self.store.owns(uri):
            self._fetch_signed(uri, list(names), dest)
        elif self.keyring is not None:
            raise AdapterRejected("bad_signature", f"{uri} is not a signed version of the adapter store "
                                                   f"{self.store.url if self.store else '(none configured)'}")
        elif urlparse(uri).scheme == "file":
            self._fetch_file(uri, list(names), dest)
        else:
            raise AdapterRejected("fetch_error", f"unsupported artifact URI {uri!r} (no adapter store configured)")

    def _fetch_signed(self, uri: str, names: list[str], dest: Path) -> None:
        """Signature, then each file's signed sha256 (in the store's own temp folder), then into dest."""
        assert self.store is not None and self.keyring is not None
        name, version = self.store.parse_uri(uri)
        staging = dest / ".signed"
        try:
            stored = self.store.fetch(name, version, staging, self.keyring)
        except StoreRejected as exc:
            raise AdapterRejected(_STORE_REASONS.get(exc.reason, "fetch_error"), exc.detail) from exc
        try:
            if sorted(stored.files) != sorted(names):
                raise AdapterRejected("bad_event", f"the event lists {sorted(names)}, the signed manifest "
                                                   f"{sorted(stored.files)}")
            for file in stored.files:
                target = dest / file
                target.parent.mkdir(parents=True, exist_ok=True)
                (staging / file).rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _fetch_file(self, uri: str, names: list[str], dest: Path) -> None:
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise AdapterRejected("fetch_error", f"file URI with a remote host: {uri}")
        src = Path(unquote(parsed.path)).resolve()
        if self.file_roots and not any(src.is_relative_to(r) for r in self.file_roots):
            raise AdapterRejected("bad_path", f"{src} is outside the allowed artifact roots")
        if not src.is_dir():
            raise AdapterRejected("missing_file", f"artifact folder {src} does not exist")
        total = 0
        for name in names:
            path = src / name
            real = path.resolve()
            if not real.is_relative_to(src):  # a symlink out of the artifact folder
                raise AdapterRejected("bad_path", f"{name} resolves outside the artifact folder")
            if not real.is_file():
                raise AdapterRejected("missing_file", f"{name} is not in {src}")
            total += real.stat().st_size
            if total > self.max_bytes:
                raise AdapterRejected("too_large", f"artifact exceeds {self.max_bytes} bytes")
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(real, target)
