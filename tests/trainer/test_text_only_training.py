"""The trainer on a text-only GGUF base (SmolLM2-135M-Instruct, real weights): captions in the instruction, labels
on the dialogue only, LoRA on the decoder layers, and a manifest naming the base as the generator names it."""

from __future__ import annotations

import json
from pathlib import Path

from vispod.common.artifacts import sha256_file
from vispod.common.embedded_models import resolve_gguf
from vispod.dataset.caption_pairs import ScenePair, write_pairs
from vispod.trainer.encoding import IGNORE_INDEX, PairEncoder
from vispod.trainer.run import run_training
from vispod.trainer.text_model import TextProcessor, is_text_model

PAIR = ScenePair("test:1:0", "test", ("we walked along the beach at sunset .", "the dog chased the waves ."),
                 ((0, 0, "What a golden evening that was, the sky went orange and pink over the water."),
                  (0, 1, "I remember the sand still warm under our feet as the light faded."),
                  (1, 0, "And then the little one ran straight into the surf, barking at every wave."),
                  (1, 1, "He was soaked and delighted, shaking water all over us.")))


def _prompt(captions, speakers, words):
    return "You write podcasts.", "Scenes:\n" + "\n".join(captions) + f"\nAbout {words} words, {len(speakers)} hosts."


def test_text_models_are_recognised():
    assert is_text_model("smollm2") and is_text_model("model.gguf")
    assert not is_text_model("/models/qwen3-vl")


def test_labels_cover_exactly_the_dialogue_and_end_of_turn(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    gguf = resolve_gguf("smollm2")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    write_pairs(tmp_path, [PAIR], _prompt, {})
    from vispod.trainer.dataset import load_pairs

    [pair] = load_pairs(tmp_path, images_per_pair=0)
    enc = PairEncoder(TextProcessor(tok), max_length=1024).encode(pair)
    labelled = enc.labels[enc.labels != IGNORE_INDEX].tolist()
    assert tok.decode(labelled[:-1]) == PAIR.target()
    assert tok.decode(labelled[-1:]) == "<|im_end|>"
    assert enc.pixel_values is None
    prompt = tok.decode(enc.input_ids[enc.labels == IGNORE_INDEX].tolist())
    assert "<|im_start|>system\nYou write podcasts." in prompt and prompt.endswith("<|im_start|>assistant\n")


def test_one_step_on_smollm2_gives_a_published_shape_adapter(tmp_path: Path) -> None:
    from vispod.trainer.settings import TrainerSettings

    write_pairs(tmp_path / "pairs", [PAIR, PAIR], _prompt, {})
    settings = TrainerSettings(pairs_dir=tmp_path / "pairs", base_model=Path("smollm2"), output_dir=tmp_path / "out",
                               images_per_pair=0, effective_batch_size=2, micro_batch_size=1, learning_rate=1e-3,
                               max_steps=1, eval_fraction=0.0, serve_metrics=False, publish=False,
                               checkpoint_every_steps=0, device="cpu", metrics_linger_s=0)
    outcome = run_training(settings)
    adapter = outcome.result.adapter_dir
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "smollm2" and config["r"] == 16
    manifest = outcome.manifest
    assert manifest["base_model_id"] == "smollm2"
    assert manifest["base_model_revision"] == "sha256:" + sha256_file(resolve_gguf("smollm2"))
    assert manifest["base_model_random_weights"] is False
    from safetensors.torch import load_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    names = sorted(weights)
    assert any(".layers.0.self_attn.q_proj.lora_A" in n for n in names)
    assert any(".layers.29.mlp.down_proj.lora_B" in n for n in names)
    assert all("lora_" in n for n in names)
    assert any(float(weights[n].abs().max()) > 0 for n in names if "lora_B" in n)  # it learned something
