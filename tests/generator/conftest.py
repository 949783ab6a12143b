"""Generator test fixtures: a tiny random Qwen3-VL (built once), a tiny text LM, small image stories, and a
scripted engine on 127.0.0.1 (helpers in gen_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gen_helpers import ScriptedEngine, handler_for
from PIL import Image
from service_fixtures import HttpServer
from tiny_lm import save_tiny_causal_lm

from vispod.devkit.testing.tiny_vlm import build_tiny_qwen3_vl


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen3_vl(tmp_path_factory.mktemp("tiny-qwen3-vl"))


@pytest.fixture(scope="session")
def story_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five small PNGs in story order, plus a corrupt one."""
    root = tmp_path_factory.mktemp("story")
    for i in range(5):
        Image.new("RGB", (64, 48), (40 * i, 120, 200 - 30 * i)).save(root / f"image_{i + 1}.png")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    return root


@pytest.fixture
def engine() -> Iterator[ScriptedEngine]:
    eng = ScriptedEngine(url="", replies=[])
    server = HttpServer(handler_for(eng), poll_interval=0.05)
    eng.url = server.url
    try:
        yield eng
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tiny_text_lm(tiny_vlm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random causal text LM (Qwen3) sharing the tiny VLM's tokenizer: the text-only code path."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_vlm)
    return save_tiny_causal_lm(tokenizer, tmp_path_factory.mktemp("tiny-text-lm"))
