"""Test and benchmark helpers: make a LoRA adapter and the AdapterPublished event that announces it.

Adapters made here have random weights (non-zero LoRA init, so they do change the output); they
mean nothing and must never be reported as trained.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from vispod.generator.adapters.gguf_lora import read_base
from vispod.v1 import events_pb2

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]


def make_lora_adapter(model_dir: Path, out_dir: Path, seed: int = 1, r: int = 4, alpha: float = 64.0) -> Path:
    """A peft LoRA adapter for the model in model_dir (q/k/v/o projections, random non-zero init),
    saved with save_pretrained to out_dir: adapter_model.safetensors + adapter_config.json."""
    # heavy: torch, peft and transformers, wanted only by the tests that build adapters
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=TARGET_MODULES, init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out_dir)
    (Path(out_dir) / "README.md").unlink(missing_ok=True)   # peft's model card: not part of the artifact
    return Path(out_dir)


def make_fake_adapter_files(out_dir: Path, base_model: str, seed: int = 0) -> Path:
    """Structurally valid adapter files without a model (registry tests that never load them)."""
    # heavy: torch (seconds to import), wanted only by the tests that build adapter files
    import torch
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    save_file({"base_model.model.layers.0.q_proj.lora_A.weight": torch.randn(4, 8, generator=gen)},
              str(out_dir / "adapter_model.safetensors"))
    (out_dir / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": TARGET_MODULES,
        "base_model_name_or_path": base_model}))
    return out_dir


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def published_event(folder: Path, adapter_id: str, base_model_id: str,
                    artifact_uri: str | None = None) -> events_pb2.AdapterPublished:
    """The AdapterPublished a trainer would send for the files in `folder` (hashes of every file)."""
    name, version = adapter_id.split("@", 1)
    config = json.loads((folder / "adapter_config.json").read_text())
    return events_pb2.AdapterPublished(
        adapter_id=adapter_id, name=name, version=version, base_model_id=base_model_id,
        artifact_uri=artifact_uri or Path(folder).resolve().as_uri(), file_sha256=file_hashes(folder),
        lora_rank=int(config.get("r", 0)), lora_alpha=float(config.get("lora_alpha", 0)),
        target_modules=list(config.get("target_modules") or []) if isinstance(config.get("target_modules"), list)
        else [])


def make_gguf_base_adapter(base_gguf: Path, out_dir: Path, base_model_id: str, seed: int = 0, r: int = 4,
                           layers: int = 2) -> Path:
    """A peft LoRA (q/v projections of the first `layers` blocks, random small factors) shaped for a llama.cpp
    GGUF base model, read from its weight shapes: loadable by the llamacpp backend without loading the model."""
    # heavy: torch (seconds to import), wanted only by the tests that build adapter files
    import torch
    from safetensors.torch import save_file

    shapes = read_base(base_gguf).shapes
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for i in range(layers):
        for module, gguf_name in (("q_proj", "attn_q"), ("v_proj", "attn_v")):
            out, inp = shapes[f"blk.{i}.{gguf_name}.weight"]
            key = f"base_model.model.model.layers.{i}.self_attn.{module}"
            tensors[f"{key}.lora_A.weight"] = torch.randn(r, inp, generator=gen) * 0.05
            tensors[f"{key}.lora_B.weight"] = torch.randn(out, r, generator=gen) * 0.05
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "adapter_model.safetensors"))
    (out_dir / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "target_modules": ["q_proj", "v_proj"],
        "base_model_name_or_path": base_model_id}))
    return out_dir
