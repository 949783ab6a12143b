"""A tiny random causal LM (Qwen3 layout, 2 layers of width 32) around a given tokenizer, built offline in about a
second and marked as random weights (vispod.common.random_weights): for code paths that need a real model, not
sensible words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vispod.common.random_weights import write_marker


def save_tiny_causal_lm(tokenizer: Any, out_dir: Path, seed: int = 0, max_positions: int = 4096) -> Path:
    """Saves a random tiny causal LM with `tokenizer` (its vocabulary, pad and eos ids) to `out_dir`."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=True,
                         max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    Qwen3ForCausalLM(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_marker(out_dir, builder="tests/tiny_lm.py", seed=seed)
    return out_dir
