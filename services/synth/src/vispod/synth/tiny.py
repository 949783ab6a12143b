"""A tiny, random-initialised Stable Diffusion pipeline, built offline from configs.

Model hubs are unreachable, so tests, demos and the CPU benchmark draw with this pipeline: a few
hundred thousand parameters, built in about a second, 64×64 images in well under a second on CPU.
Its images are noise-like and mean nothing; a marker file beside it (vispod.common.random_weights) makes
every consumer of its output say so (`random_weights=True`).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class SDShape:
    """The sizes of a Stable-Diffusion-style stack: a UNet, a VAE and a CLIP text encoder."""

    image_side: int
    vae_channels: tuple[int, ...]        # one VAE block each; every block but the last halves the side
    unet_channels: tuple[int, ...]
    unet_cross_attention: tuple[bool, ...]   # per UNet down block (the up blocks mirror them)
    layers_per_block: int
    norm_groups: int
    attention_head_dim: int
    text_width: int                      # also the UNet's cross-attention width
    text_layers: int
    text_heads: int
    text_intermediate: int
    vocab_size: int = 49408

    @property
    def latent_side(self) -> int:
        return self.image_side // 2 ** (len(self.vae_channels) - 1)


# Stable Diffusion 1.5's architecture (~860M UNet parameters; CLIP ViT-L/14's text encoder): the GPU benchmark's.
SD15 = SDShape(image_side=512, vae_channels=(128, 256, 512, 512), unet_channels=(320, 640, 1280, 1280),
               unet_cross_attention=(True, True, True, False), layers_per_block=2, norm_groups=32,
               attention_head_dim=8, text_width=768, text_layers=12, text_heads=12, text_intermediate=3072)
# The tiny pipeline's: a few hundred thousand parameters.
TINY = SDShape(image_side=64, vae_channels=(8, 16), unet_channels=(16, 32), unet_cross_attention=(True, False),
               layers_per_block=1, norm_groups=4, attention_head_dim=4, text_width=32, text_layers=2, text_heads=4,
               text_intermediate=37)


def random_sd_modules(shape: SDShape, tokenizer: Any = None) -> tuple[Any, Any, Any]:
    """Random-initialised (text encoder, VAE, UNet) of `shape`, built in that order (torch's seed decides the
    weights); the text encoder takes the tokenizer's vocabulary and special tokens when one is given."""
    from diffusers import AutoencoderKL, UNet2DConditionModel  # heavy: only when a tiny pipeline is built
    from transformers import CLIPTextConfig, CLIPTextModel

    special = {} if tokenizer is None else {"bos_token_id": tokenizer.bos_token_id,
                                            "eos_token_id": tokenizer.eos_token_id,
                                            "pad_token_id": tokenizer.pad_token_id}
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=shape.vocab_size if tokenizer is None else len(tokenizer),
            hidden_size=shape.text_width,
            intermediate_size=shape.text_intermediate,
            num_hidden_layers=shape.text_layers,
            num_attention_heads=shape.text_heads,
            max_position_embeddings=77,
            projection_dim=shape.text_width,
            **special,
        )
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(shape.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(shape.vae_channels),
        block_out_channels=shape.vae_channels,
        layers_per_block=shape.layers_per_block,
        latent_channels=4,
        norm_num_groups=shape.norm_groups,
        sample_size=shape.image_side,
    )
    down = tuple("CrossAttnDownBlock2D" if cross else "DownBlock2D" for cross in shape.unet_cross_attention)
    up = tuple("CrossAttnUpBlock2D" if cross else "UpBlock2D" for cross in reversed(shape.unet_cross_attention))
    unet = UNet2DConditionModel(
        sample_size=shape.latent_side,
        in_channels=4,
        out_channels=4,
        layers_per_block=shape.layers_per_block,
        block_out_channels=shape.unet_channels,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=shape.text_width,
        attention_head_dim=shape.attention_head_dim,
        norm_num_groups=shape.norm_groups,
    )
    return text_encoder, vae, unet


def sd15_scheduler():  # type: ignore[no-untyped-def]
    """Stable Diffusion 1.5's DDIM schedule (the tiny pipeline's and the GPU benchmark's)."""
    from diffusers import DDIMScheduler  # heavy: only when a pipeline is built

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


def build_tiny_sd_pipeline(out_dir: Path | str, seed: int = 0, sample_size: int = 64) -> Path:
    """Build and save a random tiny StableDiffusionPipeline under `out_dir`; returns the folder.

    `sample_size` is the default image side in pixels (the VAE downsamples by 2 here, not 8).
    """
    import torch  # heavy: only when a tiny pipeline is built
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = CLIPTokenizer.from_pretrained(str(write_tiny_clip_tokenizer(Path(tmp))), model_max_length=77)
    text_encoder, vae, unet = random_sd_modules(replace(TINY, image_side=sample_size), tokenizer)
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
