"""The engine on the tiny random pipeline: determinism, per-prompt seeds, limits, random-weights marking."""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from pathlib import Path

import pytest
from conftest import TINY_SIZE, synth_settings
from PIL import Image

from vispod.common.artifacts import ArtifactStore
from vispod.common.random_weights import RANDOM_WEIGHTS_MARKER, has_random_weights
from vispod.synth.engine import Synthesizer
from vispod.synth.limits import RequestError, validate_request
from vispod.synth.settings import SynthSettings
from vispod.synth.tiny import build_tiny_sd_pipeline


@pytest.fixture(scope="module")
def synth(tiny_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Synthesizer:
    return Synthesizer(synth_settings(tiny_pipeline, tmp_path_factory.mktemp("art"), batch_size=1))


def _req(synth: Synthesizer, prompts: list[str], seed: int = 0, **kw: object):
    limits = synth.settings
    return validate_request(
        prompts,
        kw.get("negative", ""),
        kw.get("width", 0),
        kw.get("height", 0),
        kw.get("steps", 0),
        kw.get("guidance", 0.0),
        seed,
        limits,
    )


def test_tiny_pipeline_builds_fast_and_is_marked_random(tmp_path: Path) -> None:
    build_tiny_sd_pipeline(tmp_path / "warm")  # imports paid once
    started = time.perf_counter()
    out = build_tiny_sd_pipeline(tmp_path / "p")
    assert time.perf_counter() - started < 10
    assert (out / "model_index.json").is_file() and has_random_weights(out)
    assert json.loads((out / RANDOM_WEIGHTS_MARKER).read_text())["random_weights"] is True
    assert {"vocab.json", "merges.txt"} <= {p.name for p in (out / "tokenizer").iterdir()} or (
        out / "tokenizer" / "tokenizer.json"
    ).is_file()
    assert not has_random_weights(tmp_path)


def test_same_request_gives_same_png_bytes(synth: Synthesizer, tiny_pipeline: Path, tmp_path: Path) -> None:
    req = _req(synth, ["a red boat on a lake", "a dog in a park"], seed=11)
    first = synth.render(req)
    again = Synthesizer(synth_settings(tiny_pipeline, tmp_path, batch_size=1)).render(req)
    assert [r.png for r in first] == [r.png for r in again]
    assert [r.seed for r in first] == [11, 12]
    image = Image.open(io.BytesIO(first[0].png))
    assert image.format == "PNG" and image.size == (TINY_SIZE, TINY_SIZE)
    assert first[0].sha256 == hashlib.sha256(first[0].png).hexdigest()
    assert first[0].png != first[1].png
    other = synth.render(_req(synth, ["a red boat on a lake"], seed=12))
    assert other[0].png != first[0].png


def test_each_prompt_is_seeded_by_request_seed_plus_index(synth: Synthesizer) -> None:
    pair = synth.render(_req(synth, ["a kitchen", "a mountain"], seed=40))
    alone = synth.render(_req(synth, ["a mountain"], seed=41))
    assert pair[1].png == alone[0].png


def test_synthesize_writes_content_addressed_pngs(synth: Synthesizer, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    result = synth.synthesize(_req(synth, ["a bus", "a bus"], seed=3, width=48, height=16), store, "local")
    assert result.random_weights and result.model == "pipeline"
    for image in result.images:
        data = store.path(image.uri).read_bytes()
        assert hashlib.sha256(data).hexdigest() == image.sha256 and image.mime_type == "image/png"
        assert Image.open(io.BytesIO(data)).size == (48, 16)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"prompts": []}, "at least one prompt"),
        ({"prompts": ["x"] * 9}, "9 prompts exceed the limit of 8"),
        ({"prompts": ["ok", "  "]}, "prompts[1]: empty"),
        ({"prompts": ["x" * 2001]}, "2001 characters exceed"),
        ({"negative": "n" * 2001}, "negative_prompt"),
        ({"width": 30}, "width: 30 is not a multiple of 8"),
        ({"height": 512}, "height: 512 exceeds the limit of 256"),
        ({"width": -8}, "width: -8 is below 8"),
        ({"steps": 11}, "steps: 11 exceed the limit of 10"),
        ({"steps": -1}, "steps: -1 is below 1"),
        ({"guidance": -1.0}, "guidance: -1.0 is negative"),
        ({"guidance": 31.0}, "exceeds the limit of 30"),
        ({"guidance": math.nan}, "finite"),
        ({"seed": -5}, "seed: -5 is negative"),
    ],
)
def test_limits_refuse_with_a_reason(kwargs: dict[str, object], reason: str) -> None:
    limits = synth_settings(Path("unused"), Path("unused"))
    args = {"prompts": ["a cat"], "negative": "", "width": 0, "height": 0, "steps": 0, "guidance": 0.0, "seed": 0}
    args.update(kwargs)
    with pytest.raises(RequestError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        validate_request(
            args["prompts"],
            args["negative"],
            args["width"],
            args["height"],
            args["steps"],
            args["guidance"],
            args["seed"],
            limits,
        )


def test_defaults_fill_zero_fields() -> None:
    req = validate_request(["a"], "", 0, 0, 0, 0.0, 0, SynthSettings(model_path=None))
    assert (req.width, req.height, req.steps, req.guidance) == (512, 512, 30, 7.0)


def test_settings_refuse_inconsistent_limits() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        SynthSettings(default_width=500)
    with pytest.raises(ValueError, match="default_steps"):
        SynthSettings(default_steps=50, max_steps=10)
