"""LoRA on the language model only, QLoRA's 4-bit quantisation of the base, and NEFTune noise on the input
embeddings."""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

# Vision blocks and the merger have projections too (and other VLMs name them q_proj …); anchoring the
# pattern on the language model's decoder layers keeps LoRA off the vision tower whatever its names.
_LANGUAGE_LAYERS = r"(?:.*\.)?language_model\.(?:model\.)?layers\.\d+"


# A text-only causal LM (LlamaForCausalLM, Gemma3ForCausalLM, …): its decoder layers are the language model.
_TEXT_LAYERS = r"(?:.*\.)?model\.layers\.\d+"


def layer_prefix_regex(text_only: bool = False) -> str:
    """A full-match regex for the module names of the language model's decoder layers (LoRA's and FSDP's units)."""
    return _TEXT_LAYERS if text_only else _LANGUAGE_LAYERS


def language_target_regex(modules: Sequence[str], text_only: bool = False) -> str:
    """A peft `target_modules` regex (full match) for the named projections of the language model's layers."""
    names = "|".join(re.escape(m) for m in modules)
    return f"{layer_prefix_regex(text_only)}\\.(?:self_attn|mlp)\\.(?:{names})"


def apply_lora(model: nn.Module, *, r: int, alpha: float, dropout: float, target_modules: Sequence[str],
               text_only: bool = False) -> Any:
    """Wraps the model with peft LoRA; everything but the adapter (vision tower and merger included) is frozen."""
    from peft import LoraConfig, get_peft_model  # heavy: only when a model is wrapped

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none", task_type="CAUSAL_LM",
                        target_modules=language_target_regex(target_modules, text_only))
    peft_model = get_peft_model(model, config)
    check_frozen(peft_model, text_only)
    return peft_model


def check_frozen(model: nn.Module, text_only: bool = False) -> None:
    """Fails loudly if anything but LoRA weights of the language model would train."""
    wrong = [n for n, p in model.named_parameters() if p.requires_grad and ("lora_" not in n or ".visual." in n
                                                                            or not (text_only
                                                                                    or "language_model" in n))]
    if wrong:
        raise RuntimeError(f"parameters outside the language model's LoRA would train: {wrong[:5]}")
    if not any(p.requires_grad for p in model.parameters()):
        raise RuntimeError("LoRA matched no module: check lora_target_modules against the model's layer names")


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


class NEFTune:
    """Adds uniform noise scaled by alpha / sqrt(sequence length × hidden size) to the input embeddings, in training
    mode only (Jain et al. 2023). A forward hook, so the model code stays untouched and evaluation sees no noise."""

    def __init__(self, embeddings: nn.Module, alpha: float) -> None:
        self.alpha = alpha
        self._handle = embeddings.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        if not module.training or self.alpha <= 0:
            return output
        scale = self.alpha / math.sqrt(output.size(-2) * output.size(-1))
        return output + torch.empty_like(output).uniform_(-scale, scale)

    def remove(self) -> None:
        self._handle.remove()


def four_bit_config(dtype: torch.dtype) -> Any:
    """QLoRA's quantisation: NF4 with double quantisation, compute in bf16; the vision tower and head stay 16-bit."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError("quantization=4bit needs bitsandbytes: pip install 'vispod-trainer[qlora]'")
    from transformers import BitsAndBytesConfig  # heavy: only for QLoRA

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=["visual", "lm_head"])
