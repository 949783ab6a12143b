"""Generator test fixtures: a tiny random Qwen3-VL (built once), a tiny text LM, small image stories, and a
scripted engine on 127.0.0.1 (helpers in gen_helpers.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from gen_helpers import ScriptedEngine, handler_for
from PIL import Image

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
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)  # type: ignore[arg-type]
    eng = ScriptedEngine(url=f"http://127.0.0.1:{server.server_address[1]}", replies=[])
    server.RequestHandlerClass = handler_for(eng)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield eng
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def tiny_text_lm(tiny_vlm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random causal text LM (Qwen3) sharing the tiny VLM's tokenizer: the text-only code path."""
    import json as _json

    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    out = tmp_path_factory.mktemp("tiny-text-lm")
    tok = AutoTokenizer.from_pretrained(tiny_vlm)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=4096,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    Qwen3ForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    (out / "vispod_random_weights.json").write_text(_json.dumps({"random_weights": True}))
    return out
