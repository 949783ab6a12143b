"""A tiny, random-initialised Stable Diffusion pipeline, built offline from configs.

Model hubs are unreachable, so tests, demos and the CPU benchmark draw with this pipeline: a few
hundred thousand parameters, built in about a second, 64×64 images in well under a second on CPU.
Its images are noise-like and mean nothing; a marker file beside it (vispod.common.random_weights) makes
every consumer of its output say so (`random_weights=True`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from vispod.common.random_weights import write_marker

# Common English letter pairs: enough merges that the BPE is a real one, few enough to stay tiny.
_MERGES = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("e", "r"), ("o", "n"), ("r", "e"), ("a", "t")]


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for raw bytes (GPT-2's mapping)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def write_tiny_clip_tokenizer(out_dir: Path) -> Path:
    """Write vocab.json + merges.txt of a minimal CLIP-style byte-level BPE tokenizer."""
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {}
    alphabet = _byte_alphabet()
    for ch in alphabet:
        vocab[ch] = len(vocab)
    for ch in alphabet:
        vocab[ch + "</w>"] = len(vocab)
    for left, right in _MERGES:
        vocab.setdefault(left + right, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in _MERGES)
    (out_dir / "merges.txt").write_text(merges, encoding="utf-8")
    return out_dir


def sd15_scheduler():  # type: ignore[no-untyped-def]
    """Stable Diffusion 1.5's DDIM schedule (the tiny pipeline's and the GPU benchmark's)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


def build_tiny_sd_pipeline(out_dir: Path | str, seed: int = 0, sample_size: int = 64) -> Path:
    """Build and save a random tiny StableDiffusionPipeline under `out_dir`; returns the folder.

    `sample_size` is the default image side in pixels (the VAE downsamples by 2 here, not 8).
    """
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = CLIPTokenizer.from_pretrained(str(write_tiny_clip_tokenizer(Path(tmp))), model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=32,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=sample_size,
    )
    latent = sample_size // 2
    unet = UNet2DConditionModel(
        sample_size=latent,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    scheduler = sd15_scheduler()
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(out), safe_serialization=True)
    # The pipeline loader ignores unknown files; the marker travels with the weights wherever they are copied.
    write_marker(out, builder="vispod.synth.tiny.build_tiny_sd_pipeline", seed=seed)
    return out
