"""Paths and crash-safe writes of a dataset folder (layout: see vispod.dataset)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

PAIRS_FILE = "pairs.jsonl"
MANIFEST_FILE = "manifest.json"
IMAGES_DIR = "images"
STATE_DIR = ".build"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a sibling temp file, fsync, rename: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class DatasetDir:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def pairs(self) -> Path:
        return self.root / PAIRS_FILE

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_FILE

    @property
    def config(self) -> Path:
        return self.root / STATE_DIR / "config.json"

    def record(self, pair_id: str) -> Path:
        return self.root / STATE_DIR / "records" / f"{pair_id}.json"

    def image_rel(self, pair_id: str, k: int) -> str:
        return f"{IMAGES_DIR}/{pair_id}/{k}.png"

    def prepare(self) -> None:
        (self.root / STATE_DIR / "records").mkdir(parents=True, exist_ok=True)
        (self.root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        for stale in (self.root / STATE_DIR / "records").glob(".*.tmp.*"):
            stale.unlink()

    def read_pairs(self) -> list[dict[str, Any]]:
        """Committed pair lines; a torn last line (a kill mid-append) is cut off the file."""
        if not self.pairs.exists():
            return []
        data = self.pairs.read_bytes()
        good_end = 0
        pairs: list[dict[str, Any]] = []
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:
                break  # no newline: the append was cut short
            try:
                pairs.append(json.loads(data[pos:nl]))
            except ValueError:
                break
            pos = good_end = nl + 1
        if good_end < len(data):
            with self.pairs.open("r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
        return pairs

    def append_pair(self, line: str) -> None:
        with self.pairs.open("ab") as fh:
            fh.write(line.encode("utf-8") + b"\n")
            fh.flush()
            os.fsync(fh.fileno())

    def image_ok(self, rel: str, sha256: str) -> bool:
        path = self.root / rel
        return path.is_file() and sha256_bytes(path.read_bytes()) == sha256
