"""The real VLM path with a tiny random Qwen3-VL: processor, image tokens, generation, peft adapters."""

from __future__ import annotations

from pathlib import Path

import pytest
from gen_helpers import generator_settings, make_event
from PIL import Image

from vispod.generator.adapters import AdapterRegistry, AdapterVersion
from vispod.generator.backends.base import GenerationInput
from vispod.generator.backends.local import LocalBackend
from vispod.generator.engine import Generator
from vispod.v1 import common_pb2, events_pb2


@pytest.fixture(scope="module")
def vlm(tiny_vlm: Path) -> LocalBackend:
    return LocalBackend(tiny_vlm, device="cpu")


@pytest.fixture(scope="module")
def lora_dir(tiny_vlm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter made here with peft (non-zero init, so it changes the output), saved to disk."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm)
    cfg = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    out = tmp_path_factory.mktemp("lora")
    get_peft_model(model, cfg).save_pretrained(out)
    return out


def _inp(n_images: int = 3, **kw) -> GenerationInput:
    images = [Image.new("RGB", (64, 48), (50 * i, 90, 30)) for i in range(n_images)]
    kw.setdefault("temperature", 0.0)
    return GenerationInput(system="You write podcasts.", user="Write a podcast.", images=images,
                           max_new_tokens=12, **kw)


def test_vlm_reads_images_and_generates(vlm: LocalBackend) -> None:
    assert vlm.random_weights and vlm.input_mode == events_pb2.INPUT_MODE_PIXELS
    s1 = vlm.stream(_inp(1))
    text = "".join(s1)
    s3 = vlm.stream(_inp(3))
    "".join(s3)
    assert isinstance(text, str) and s1.completion_tokens > 0
    assert s3.prompt_tokens > s1.prompt_tokens  # image tokens in the prompt
    assert s1.finish_reason in ("stop", "length")


def test_seeded_sampling_is_reproducible(vlm: LocalBackend) -> None:
    a = "".join(vlm.stream(_inp(2, temperature=1.0, seed=5)))
    b = "".join(vlm.stream(_inp(2, temperature=1.0, seed=5)))
    assert a == b


def test_adapter_changes_output_and_base_stays_base(vlm: LocalBackend, lora_dir: Path) -> None:
    adapter = AdapterVersion("tiny-lora@1.0", lora_dir, "tiny")
    base = "".join(vlm.stream(_inp(2)))
    tuned = "".join(vlm.stream(_inp(2, adapter=adapter)))
    again = "".join(vlm.stream(_inp(2)))
    assert tuned != base and again == base


def test_adapter_that_does_not_fit_is_unavailable(vlm: LocalBackend, tmp_path: Path) -> None:
    from vispod.generator.adapters import AdapterUnavailable
    with pytest.raises(AdapterUnavailable):
        "".join(vlm.stream(_inp(1, adapter=AdapterVersion("missing@1", tmp_path, "tiny"))))


def test_generator_records_on_the_vlm(tiny_vlm: Path, story_dir: Path, vlm: LocalBackend) -> None:
    s = generator_settings(story_dir, model_path=tiny_vlm, max_new_tokens=16)
    gen = Generator(s, vlm, AdapterRegistry(s.adapter_state_dir, s.adapter_cache_dir, "tiny"))
    r = gen.generate(make_event(story_dir, n=3))
    # random weights write junk: the result is FAILED with the reason after one retry, never an empty OK
    assert r.random_weights and r.backend == "local" and r.model == tiny_vlm.name
    assert r.input_mode == events_pb2.INPUT_MODE_PIXELS and r.usage.prompt_tokens > 0
    if r.status == common_pb2.STATUS_FAILED:
        assert r.attempts == 2 and r.error.startswith("malformed model output") and not r.dialogue.turns
    else:
        assert len({t.speaker for t in r.dialogue.turns}) >= 2
