"""Text-only base models for the trainer: a GGUF causal LM (e.g. SmolLM2-135M-Instruct, `--base smollm2`).

The model is de-quantised by transformers from the same GGUF file the llama.cpp backend serves, so the LoRA
learns deltas on exactly the weights it will be applied to. `TextProcessor` gives the tokenizer the shape of
a VLM processor (chat template over text parts, `__call__` without images), so the encoder and the loop stay
one code path for both kinds of model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vispod.common.embedded_models import MODELS, resolve_gguf


def is_text_model(path: Path | str) -> bool:
    """A .gguf file or an embedded model's name: a text-only causal LM."""
    return str(path) in MODELS or str(path).endswith(".gguf")


def _flatten(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            if any(part.get("type") == "image" for part in content):
                raise ValueError("a text-only model cannot take images (pairs for it carry captions in the text)")
            content = "".join(part.get("text", "") for part in content)
        out.append({"role": m["role"], "content": content})
    return out


class TextProcessor:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def apply_chat_template(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        return self.tokenizer.apply_chat_template(_flatten(messages), **kwargs)

    def __call__(self, *, text: list[str], images: Any = None, return_tensors: str = "pt") -> dict[str, Any]:
        if images:
            raise ValueError("a text-only model cannot take images")
        return dict(self.tokenizer(text, return_tensors=return_tensors, add_special_tokens=False))


def load_text_base(name_or_path: Path | str, dtype: torch.dtype) -> tuple[Any, TextProcessor, Path]:
    """(model, processor, gguf file) for an embedded model's name or a .gguf path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy (seconds): only when a model loads

    gguf = resolve_gguf(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
    return model, TextProcessor(tokenizer), gguf
