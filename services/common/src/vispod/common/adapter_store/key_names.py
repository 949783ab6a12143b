"""LoRA tensor names as the engine that loads them expects them: produced by the trainer for its serving engine and
checked before an engine loads a version, because engines skip names they do not recognise without an error (the
adapter would then change nothing, or only part of the model).

peft names a tensor `base_model.model.<module path>.lora_A.weight`. The module path of a vision-language model's
decoder differs by engine:
- TGI looks the layers up as `base_model.model.model.layers.N.<proj>` (its Qwen2-VL/Qwen2.5-VL text model is
  `model.layers`), so the `language_model.` that transformers ≥ 4.52 puts in the path must go;
- vLLM maps Hugging Face paths itself (`model.language_model.` and `model.` both become its language model), so it
  takes both; a text model's path (`model.layers.N`) suits every engine.
Only the decoder's attention and MLP projections are LoRA targets (the vision tower is never trained).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable
from pathlib import Path

_PROJ = r"(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.lora_[AB]\.weight"
RULES: dict[str, re.Pattern[str]] = {
    "tgi": re.compile(rf"^base_model\.model\.model\.layers\.\d+\.{_PROJ}$"),
    "vllm": re.compile(rf"^base_model\.model\.(model\.(language_model\.)?|language_model\.model\.)"
                       rf"layers\.\d+\.{_PROJ}$"),
}
ENGINES = tuple(RULES)
_TGI_RENAME = ("base_model.model.model.language_model.layers.", "base_model.model.model.layers.")


def for_engine(name: str, engine: str) -> str:
    """The name `engine` loads the tensor peft saved as `name` under."""
    if engine not in RULES:
        raise ValueError(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
    old, new = _TGI_RENAME
    return new + name[len(old):] if engine == "tgi" and name.startswith(old) else name


def unloadable(names: Iterable[str], engine: str) -> list[str]:
    """The tensor names `engine` would not load (it skips them silently)."""
    rule = RULES[engine]
    return sorted(n for n in names if not rule.match(n))


MAX_HEADER = 100 * 1024 * 1024


def tensor_names(path: Path) -> list[str]:
    """The tensor names in a safetensors file's header (nothing else is read); ValueError when it has none."""
    with Path(path).open("rb") as f:
        raw = f.read(8)
        (length,) = struct.unpack("<Q", raw) if len(raw) == 8 else (0,)
        if not 2 <= length <= MAX_HEADER:
            raise ValueError(f"{Path(path).name}: not a safetensors file")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{Path(path).name}: unreadable safetensors header") from exc
    if not isinstance(header, dict):
        raise ValueError(f"{Path(path).name}: unreadable safetensors header")
    return [k for k in header if k != "__metadata__"]
