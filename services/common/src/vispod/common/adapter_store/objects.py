"""Where the adapter store keeps its bytes: a local folder or an S3 bucket, behind one small interface.

Every write is create-only (`put_if_absent`): a key, once written, is never replaced, so published versions
and content-addressed blobs are immutable on both backends. Reads are bounded by a byte limit. A store that
cannot be reached raises `StoreUnavailable` (an OSError: callers retry later); a missing key `ObjectMissing`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlparse

from botocore.exceptions import BotoCoreError, ClientError

CHUNK = 1 << 20


class StoreUnavailable(OSError):
    """The store did not answer (down, timed out, 5xx): nothing was decided; try again later."""


class ObjectMissing(LookupError):
    """No object under this key."""


def check_key(key: str) -> str:
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or "\\" in key or "\x00" in key or any(p in (".", "..") for p in parts):
        raise ValueError(f"unsafe object key {key!r}")
    return key


class ObjectStore(Protocol):
    url: str  # file:///root or s3://bucket/prefix: names the store in artifact URIs

    def put_if_absent(self, key: str, source: bytes | Path) -> bool:
        """Writes the object unless the key exists; True when written, False when it was already there."""

    def get_bytes(self, key: str, max_bytes: int) -> bytes: ...

    def download(self, key: str, dest: Path, max_bytes: int) -> str:
        """Streams the object to `dest` (atomically) and returns its sha256."""

    def list_keys(self, prefix: str) -> list[str]: ...


@dataclass
class FilesystemObjects:
    """Objects as files under `root` (a PVC or a local folder); create-only through hard links."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_if_absent(self, key: str, source: bytes | Path) -> bool:
        target = self._path(key)
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(source, bytes):
                    out.write(source)
                else:
                    with open(source, "rb") as src:
                        while chunk := src.read(CHUNK):
                            out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o444)
            try:
                os.link(tmp, target)  # fails if the key appeared meanwhile: never replaces
            except FileExistsError:
                return False
            return True
        finally:
            os.unlink(tmp)

    def get_bytes(self, key: str, max_bytes: int) -> bytes:
        path = self._path(key)
        try:
            if path.stat().st_size > max_bytes:
                raise ValueError(f"{key} is larger than {max_bytes} bytes")
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    def download(self, key: str, dest: Path, max_bytes: int) -> str:
        path = self._path(key)
        try:
            with open(path, "rb") as src:
                return _write_stream(iter(lambda: src.read(CHUNK), b""), dest, max_bytes, key)
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root / prefix if prefix else self.root
        folder = base if base.is_dir() else base.parent
        if not folder.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in folder.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not PurePosixPath(k).name.startswith(".put-"))


def _write_stream(chunks, dest: Path, max_bytes: int, key: str) -> str:
    """Chunks → dest via a temp file in the same folder; sha256 computed on the bytes written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest, total = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".get-")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                total += len(chunk)
                if total > max_bytes:
                    raise ValueError(f"{key} is larger than {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str | None = None      # None: AWS's own endpoint for the region
    region: str = "us-east-1"
    access_key_id: str | None = None     # None: boto3's default chain (IRSA, instance profile, env)
    secret_access_key: str | None = None
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 30.0
    attempts: int = 3                    # boto3 "standard" retry mode, per call


class S3Objects:
    """Objects in `s3://bucket/prefix` through boto3; create-only writes use `If-None-Match: *`."""

    def __init__(self, bucket: str, prefix: str = "", config: S3Config | None = None, client=None) -> None:
        import boto3  # deferred: ~0.7 s, paid only where an S3 store is configured
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        cfg = config or S3Config()
        self._client = client or boto3.client(
            "s3", endpoint_url=cfg.endpoint_url, region_name=cfg.region,
            aws_access_key_id=cfg.access_key_id, aws_secret_access_key=cfg.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=cfg.connect_timeout_s,
                          read_timeout=cfg.read_timeout_s,
                          retries={"mode": "standard", "total_max_attempts": cfg.attempts}))

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, fn, key: str, **kw):
        try:
            return fn(Bucket=self.bucket, Key=self._key(key), **kw)
        except ClientError as exc:
            _raise_client_error(exc, key)
        except BotoCoreError as exc:  # connection refused, timeouts, …
            raise StoreUnavailable(f"s3 unreachable: {type(exc).__name__}") from None

    def put_if_absent(self, key: str, source: bytes | Path) -> bool:
        try:
            if isinstance(source, bytes):
                self._call(self._client.put_object, key, Body=source, IfNoneMatch="*")
            else:
                with open(source, "rb") as body:
                    self._call(self._client.put_object, key, Body=body, IfNoneMatch="*")
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise

    def get_bytes(self, key: str, max_bytes: int) -> bytes:
        resp = self._call(self._client.get_object, key)
        if int(resp.get("ContentLength") or 0) > max_bytes:
            resp["Body"].close()
            raise ValueError(f"{key} is larger than {max_bytes} bytes")
        return self._read(resp["Body"], key, max_bytes)

    def download(self, key: str, dest: Path, max_bytes: int) -> str:
        resp = self._call(self._client.get_object, key)
        body = resp["Body"]
        if int(resp.get("ContentLength") or 0) > max_bytes:
            body.close()
            raise ValueError(f"{key} is larger than {max_bytes} bytes")
        try:
            return _write_stream(self._chunks(body, key), dest, max_bytes, key)
        finally:
            body.close()

    def _chunks(self, body, key: str):
        try:
            while chunk := body.read(CHUNK):
                yield chunk
        except (BotoCoreError, OSError) as exc:
            raise StoreUnavailable(f"s3 read of {key} broke: {type(exc).__name__}") from None

    def _read(self, body, key: str, max_bytes: int) -> bytes:
        data = b"".join(self._chunks(body, key))
        if len(data) > max_bytes:
            raise ValueError(f"{key} is larger than {max_bytes} bytes")
        return data

    def list_keys(self, prefix: str) -> list[str]:
        full = self._key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        keys: list[str] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                keys += [o["Key"] for o in page.get("Contents", [])]
        except ClientError as exc:
            _raise_client_error(exc, full)
        except BotoCoreError as exc:
            raise StoreUnavailable(f"s3 unreachable: {type(exc).__name__}") from None
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(k[cut:] for k in keys)


def _raise_client_error(exc, key: str):
    """Missing → ObjectMissing; 5xx/429 → StoreUnavailable (retry); anything else (credentials, a refused
    condition) is re-raised for the caller: it is a decision, not an outage."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in ("NoSuchKey", "404", "NotFound"):
        raise ObjectMissing(key) from None
    if status >= 500 or status in (0, 429):
        raise StoreUnavailable(f"s3 {code or status} on {key}") from None
    raise exc


def open_objects(url: str, s3: S3Config | None = None) -> ObjectStore:
    """`s3://bucket/prefix`, `file:///path` or a plain path."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"s3 store URL without a bucket: {url}")
        return S3Objects(parsed.netloc, parsed.path, s3)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file store URL with a remote host: {url}")
        return FilesystemObjects(Path(unquote(parsed.path)))
    if parsed.scheme == "":
        return FilesystemObjects(Path(url))
    raise ValueError(f"unsupported adapter store URL {url!r} (s3://bucket/prefix or file:///path)")
