"""The artifact store: big things (images, adapters) live here and travel by URI.

Filesystem (a PVC in production) by default: content-addressed blobs and immutable versioned folders.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path


class ArtifactExists(FileExistsError):
    """A published version is never overwritten."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def uri(self, path: Path) -> str:
        return Path(path).resolve().as_uri()

    def path(self, uri: str) -> Path:
        """The local path of a file:// URI inside this store (refuses anything outside it)."""
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme != "file":
            raise ValueError(f"not a file:// URI: {uri}")
        path = Path(urllib.parse.unquote(parsed.path)).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"{uri} is outside the artifact store {self.root}")
        return path

    def put_bytes(self, data: bytes, suffix: str = "") -> str:
        """Stores bytes under their sha256 (idempotent) and returns the file:// URI."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.root / "blobs" / digest[:2] / f"{digest}{suffix}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        return target.as_uri()

    def put_dir(self, src: Path, name: str, version: str) -> str:
        """Copies a folder to <root>/<name>/<version> atomically; refuses to overwrite an existing version."""
        for part in (name, version):
            if not part or "/" in part or part in (".", "..") or "@" in part:
                raise ValueError(f"bad artifact name or version: {part!r}")
        target = self.root / name / version
        if target.exists():
            raise ArtifactExists(f"{name}@{version} is already published at {target}")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{version}-"))
        shutil.copytree(src, staging, dirs_exist_ok=True)
        try:
            os.rename(staging, target)  # atomic; fails if another publisher won the race
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ArtifactExists(f"{name}@{version} is already published") from exc
        return target.as_uri()

    def versions(self, name: str) -> list[str]:
        folder = self.root / name
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if folder.exists() else []
