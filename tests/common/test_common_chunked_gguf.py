"""A GGUF shipped in chunk packages: joined in order, verified (size, header, metadata), or refused whole."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from vispod.common.chunked_gguf import ChunkedGGUF, ChunkedModelError, join


def _tiny_gguf(path: Path, name: str = "Qwen2.5 Tiny Instruct") -> bytes:
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name(name)
    writer.add_tensor("token_embd.weight", np.arange(4096, dtype=np.float32).reshape(64, 64))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def _chunks(tmp: Path, data: bytes, n: int = 3) -> list[Path]:
    size = -(-len(data) // n)
    paths = []
    for i in range(n):
        p = tmp / f"part{i + 1:02d}.bin"
        p.write_bytes(data[i * size:(i + 1) * size])
        paths.append(p)
    return paths


def _model(size: int) -> ChunkedGGUF:
    return ChunkedGGUF("tiny.gguf", size, (), "qwen2", "Qwen2.5", "test")


def test_chunks_join_into_the_verified_file_with_its_sha256(tmp_path: Path) -> None:
    data = _tiny_gguf(tmp_path / "whole.gguf")
    target = tmp_path / "cache" / "tiny.gguf"
    record = join(_chunks(tmp_path, data), target, _model(len(data)))
    assert target.read_bytes() == data and record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["general.architecture"] == "qwen2" and json.loads(target.with_suffix(".json").read_text()) == record


def test_chunks_out_of_order_or_another_model_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    data = _tiny_gguf(tmp_path / "whole.gguf")
    target = tmp_path / "cache" / "tiny.gguf"
    with pytest.raises(ChunkedModelError, match="not a GGUF"):
        join(list(reversed(_chunks(tmp_path, data))), target, _model(len(data)))
    other = _tiny_gguf(tmp_path / "other.gguf", name="SmolLM2 135M")
    with pytest.raises(ChunkedModelError, match="metadata"):
        join(_chunks(tmp_path, other), target, _model(len(other)))
    with pytest.raises(ChunkedModelError, match="bytes, expected"):
        join(_chunks(tmp_path, data)[:2], target, _model(len(data)))
    assert not target.exists() and list(target.parent.iterdir()) == []
