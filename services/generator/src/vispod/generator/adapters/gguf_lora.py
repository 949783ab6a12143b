"""peft LoRA adapter → llama.cpp's GGUF LoRA format, converted once and cached beside the adapter.

The trainer tunes the transformers model that was loaded from the same GGUF file (de-quantised), so the
LoRA factors apply unchanged to llama.cpp's weights, with one exception: llama.cpp stores the query and key
projections of `llama`-architecture models with their rows permuted for its rotary embedding, so the B
factor (whose rows are output rows) of `q_proj` / `k_proj` is permuted the same way.

GGUF LoRA layout (what llama.cpp's adapter loader checks): `general.type = adapter`,
`general.architecture` = the base model's, `adapter.type = lora`, `adapter.lora.alpha` (the scale is
alpha / rank), and per adapted weight `<gguf tensor name>.lora_a` (rank × in) and `.lora_b` (out × rank).

The converted file gets a sidecar `<name>.gguf.json` with its own sha256 and the sha256 of the source
files and base model it was made from; a cached file whose sidecar does not match is made again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

from vispod.common.artifacts import sha256_file

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
# Architectures whose converter permutes q/k rows (llama.cpp's convert_hf_to_gguf LlamaModel and kin).
_PERMUTED_QK = {"llama"}


class LoraConversionError(ValueError):
    """The adapter cannot be applied to this GGUF base model (wrong model, unsupported options, bad files)."""


@dataclass(frozen=True)
class BaseInfo:
    path: Path
    architecture: str
    n_head: int
    n_head_kv: int
    n_blocks: int
    shapes: dict[str, tuple[int, int]]      # gguf tensor name -> (out, in)
    sha256: str


def read_base(path: Path) -> BaseInfo:
    """What the converter needs from a GGUF base model (architecture, heads, weight shapes)."""
    path = Path(path)
    reader = gguf.GGUFReader(str(path), "r")

    def field(key: str):
        f = reader.fields.get(key)
        if f is None:
            return None
        value = f.parts[f.data[0]]
        return bytes(value).decode() if value.dtype == np.uint8 else int(value[0])

    arch = field("general.architecture")
    if not arch:
        raise LoraConversionError(f"{path.name} has no general.architecture: not a GGUF model")
    shapes = {}
    for t in reader.tensors:
        if len(t.shape) == 2:
            shapes[t.name] = (int(t.shape[1]), int(t.shape[0]))   # GGUF lists ne0 (in) first
    n_head = field(f"{arch}.attention.head_count") or 0
    return BaseInfo(path=path, architecture=arch, n_head=n_head,
                    n_head_kv=field(f"{arch}.attention.head_count_kv") or n_head,
                    n_blocks=field(f"{arch}.block_count") or 0, shapes=shapes, sha256=sha256_file(path))


def _permute_rows(b: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf's rotary permutation of output rows, applied to a LoRA B factor (out × rank)."""
    out = b.shape[0]
    return b.reshape(n_head, 2, out // n_head // 2, *b.shape[1:]).swapaxes(1, 2).reshape(b.shape)


def _gguf_name(hf_module: str, base: BaseInfo) -> str:
    arch = {name: a for a, name in gguf.MODEL_ARCH_NAMES.items()}.get(base.architecture)
    if arch is None:
        raise LoraConversionError(f"architecture {base.architecture!r} is unknown to the gguf package")
    mapped = gguf.get_tensor_name_map(arch, base.n_blocks).get_name(hf_module + ".weight", try_suffixes=(".weight",))
    if mapped is None:
        raise LoraConversionError(f"adapter module {hf_module!r} has no counterpart in a {base.architecture} model")
    return mapped


def convert(adapter_dir: Path, base: BaseInfo, out_path: Path) -> None:
    """Write the GGUF LoRA for the peft adapter in `adapter_dir` (LoraConversionError if it does not fit)."""
    adapter_dir = Path(adapter_dir)
    try:
        config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        tensors = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    except Exception as exc:  # safetensors raises its own error type for corrupt files
        raise LoraConversionError(f"cannot read the peft adapter: {type(exc).__name__}: {exc}") from exc
    if config.get("peft_type", "LORA") != "LORA":
        raise LoraConversionError(f"peft_type {config.get('peft_type')!r} is not LoRA")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise LoraConversionError("per-module rank_pattern / alpha_pattern is not supported by llama.cpp adapters")
    if config.get("fan_in_fan_out"):
        raise LoraConversionError("fan_in_fan_out adapters are not supported")
    rank = int(config["r"])
    alpha = float(config.get("lora_alpha", rank))
    if config.get("use_rslora"):
        alpha = alpha * math.sqrt(rank)   # llama.cpp scales by alpha / r; rsLoRA by alpha / sqrt(r)

    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        for part in ("lora_A", "lora_B"):
            marker = f".{part}."
            if marker in key:
                module = key.split(marker)[0].removeprefix("base_model.model.")
                pairs.setdefault(module, {})[part] = value.astype(np.float32)
                break
        else:
            raise LoraConversionError(f"adapter tensor {key!r} is not a LoRA factor (modules_to_save is not supported)")
    if not pairs:
        raise LoraConversionError("the adapter holds no LoRA factors")

    writer = gguf.GGUFWriter(str(out_path), base.architecture)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    for module, ab in sorted(pairs.items()):
        if set(ab) != {"lora_A", "lora_B"}:
            raise LoraConversionError(f"module {module} lacks one of its LoRA factors")
        a, b = ab["lora_A"], ab["lora_B"]
        name = _gguf_name(module, base)
        shape = base.shapes.get(name)
        if shape is None:
            raise LoraConversionError(f"the base model has no weight {name} (wrong base model?)")
        if a.shape[1] != shape[1] or b.shape[0] != shape[0] or a.shape[0] != b.shape[1]:
            raise LoraConversionError(f"{module}: LoRA {tuple(b.shape)}·{tuple(a.shape)} does not fit the base weight "
                                      f"{name} {shape} (wrong base model?)")
        if base.architecture in _PERMUTED_QK:
            if name.endswith("attn_q.weight"):
                b = _permute_rows(b, base.n_head)
            elif name.endswith("attn_k.weight"):
                b = _permute_rows(b, base.n_head_kv)
        stem = name.removesuffix(".weight")
        writer.add_tensor(f"{stem}.weight.lora_a", np.ascontiguousarray(a))
        writer.add_tensor(f"{stem}.weight.lora_b", np.ascontiguousarray(b))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _source_digest(adapter_dir: Path) -> str:
    return ",".join(f"{n}={sha256_file(Path(adapter_dir) / n)}" for n in (ADAPTER_CONFIG, ADAPTER_WEIGHTS))


def cached_gguf(adapter_dir: Path, base: BaseInfo, cache_dir: Path | None = None) -> Path:
    """The GGUF LoRA for `adapter_dir` on `base`: from the cache when its sidecar matches, else converted now."""
    adapter_dir = Path(adapter_dir)
    cache_dir = Path(cache_dir) if cache_dir else adapter_dir.parent
    cache_dir.mkdir(parents=True, exist_ok=True)
    source = _source_digest(adapter_dir)
    # Named by content (the source files and the base), so two adapters never share a cached file.
    out = cache_dir / f"lora-{hashlib.sha256(source.encode()).hexdigest()[:16]}.{base.sha256[:12]}.gguf"
    sidecar = out.with_name(out.name + ".json")
    if out.is_file() and sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except ValueError:
            meta = {}
        if meta.get("source") == source and meta.get("base_sha256") == base.sha256 \
                and meta.get("sha256") == sha256_file(out):
            return out
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".gguf.part")
    os.close(fd)
    try:
        convert(adapter_dir, base, Path(tmp))
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    meta = {"sha256": sha256_file(out), "source": source, "base_sha256": base.sha256,
            "base_model": base.path.name, "architecture": base.architecture}
    sidecar.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return out
