"""In-process llama.cpp (llama-cpp-python) for GGUF text models: SmolLM2-135M-Instruct, Gemma 3 270M, …

The model reads captions, not pixels. Prompts are rendered with the model's own chat template (read from
the GGUF metadata) or, for base models that have none worth using, as plain text (`prompt_format=plain`).
Generation runs on `LlamaEngine`: batched parallel sequences, scripted steps (see `GenerationInput.steps`),
and LoRA adapters converted once from the trainer's peft files to GGUF and applied per request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from jinja2.sandbox import ImmutableSandboxedEnvironment

from vispod.generator.adapters import AdapterUnavailable, AdapterVersion
from vispod.generator.adapters.gguf_lora import BaseInfo, LoraConversionError, cached_gguf, read_base
from vispod.generator.backends.base import CAPTIONS, BackendError, GenerationInput, GenerationStream, Step
from vispod.generator.backends.llamacpp_engine import LlamaEngine
from vispod.generator.backends.llamacpp_native import LlamaEngineError
from vispod.generator.backends.llamacpp_sampler import Sampling
from vispod.generator.backends.model_files import resolve_model_path
from vispod.generator.prompting import render_plain

log = logging.getLogger(__name__)

PromptFormat = Literal["chat", "plain"]
RANDOM_WEIGHTS_KEY = "vispod.random_weights"     # set in GGUF files the tests build from random weights


class LlamaCppBackend:
    name = "llamacpp"
    input_mode = CAPTIONS
    supports_prefill = True
    supports_steps = True

    def __init__(self, model_path: Path, *, prompt_format: PromptFormat = "chat", n_parallel: int = 4,
                 n_ctx_per_seq: int = 4096, n_threads: int | None = None, top_k: int = 40,
                 repeat_penalty: float = 1.0, no_repeat_ngram: int = 0, adapter_cache_dir: Path | None = None,
                 share_prompt_prefix: bool = True) -> None:
        model_path = Path(model_path)
        try:
            self.engine = LlamaEngine(model_path, n_parallel=n_parallel, n_ctx_per_seq=n_ctx_per_seq,
                                      n_threads=n_threads, share_prefixes=share_prompt_prefix)
        except LlamaEngineError as exc:
            raise BackendError(str(exc)) from exc
        self.model = model_path.stem
        self.model_path = model_path
        self.prompt_format = prompt_format
        self.top_k = top_k
        self.repeat_penalty = repeat_penalty
        self.no_repeat_ngram = no_repeat_ngram
        self.random_weights = self.engine.metadata.get(RANDOM_WEIGHTS_KEY, "").lower() == "true"
        self.adapter_cache_dir = adapter_cache_dir
        self._base: BaseInfo | None = None
        self._lock = threading.Lock()
        self._template = self._chat_template() if prompt_format == "chat" else None
        log.info("llama.cpp model loaded", extra={"model": self.model, "architecture": self.engine.architecture,
                                                  "seconds": round(self.engine.load_seconds, 2),
                                                  "parallel": n_parallel, "prompt_format": prompt_format})

    @classmethod
    def from_settings(cls, s) -> LlamaCppBackend:
        return cls(resolve_model_path(s.model_path), prompt_format=s.prompt_format, n_parallel=s.concurrency,
                   n_ctx_per_seq=s.context_tokens, n_threads=s.threads, top_k=s.top_k,
                   repeat_penalty=s.repeat_penalty, no_repeat_ngram=s.no_repeat_ngram,
                   adapter_cache_dir=s.adapter_cache_dir / "gguf", share_prompt_prefix=s.share_prompt_prefix)

    # --- prompts -----------------------------------------------------------------------------
    def _chat_template(self):
        source = self.engine.metadata.get("tokenizer.chat_template")
        if not source:
            raise BackendError(f"{self.model} has no chat template: set prompt_format=plain for a base model")
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        return env.from_string(source)

    def render_prompt(self, inp: GenerationInput) -> str:
        if self._template is None:
            return render_plain(inp.system, inp.user)
        messages = [{"role": "system", "content": inp.system}, {"role": "user", "content": inp.user}]
        return self._template.render(messages=messages, add_generation_prompt=True, bos_token="", eos_token="")

    # --- adapters ----------------------------------------------------------------------------
    def servable(self, adapter_id: str) -> bool:
        return True

    def _base_info(self) -> BaseInfo:
        with self._lock:
            if self._base is None:
                self._base = read_base(self.model_path)
            return self._base

    def on_adapter_loaded(self, adapter: AdapterVersion) -> None:
        """Convert (once, cached) and load the adapter; LoraConversionError/LlamaEngineError when it does not fit."""
        if self.engine.has_adapter(adapter.adapter_id):
            return
        path = cached_gguf(adapter.local_path, self._base_info(), self.adapter_cache_dir)
        self.engine.load_adapter(adapter.adapter_id, path)

    def on_adapter_retired(self, adapter_id: str) -> None:
        self.engine.unload_adapter(adapter_id)

    # --- generation --------------------------------------------------------------------------
    def stream(self, inp: GenerationInput) -> GenerationStream:
        adapter = None
        if inp.adapter is not None:
            try:
                self.on_adapter_loaded(inp.adapter)
            except (LoraConversionError, LlamaEngineError) as exc:
                raise AdapterUnavailable(f"adapter {inp.adapter.adapter_id} cannot be applied to "
                                         f"{self.model}: {exc}") from exc
            adapter = inp.adapter.adapter_id
        prompt = self.engine.tokenize(self.render_prompt(inp), add_bos=self.engine.add_bos, special=True)
        # Plain mode: the prefill is part of the answer but, as with the other backends, not of the stream.
        steps = list(inp.steps) or [Step(text=inp.prefill, max_new_tokens=inp.max_new_tokens, stop=tuple(inp.stop),
                                         echo=False)]
        sampling = Sampling(temperature=inp.temperature, top_p=inp.top_p, top_k=self.top_k,
                            repeat_penalty=self.repeat_penalty, no_repeat_ngram=self.no_repeat_ngram, seed=inp.seed)
        try:
            # Each text tokenised as it stands in the prompt, after a space.
            no_copy = [self.engine.tokenize(f" {text.strip()}") for text in inp.no_copy]
            es = self.engine.submit(prompt, steps, sampling, adapter, no_copy)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc
        except LlamaEngineError as exc:
            raise AdapterUnavailable(str(exc)) from exc
        result = GenerationStream(iter(()), prompt_tokens=len(prompt))

        def chunks() -> Iterator[str]:
            try:
                yield from es
            except LlamaEngineError as exc:
                raise BackendError(f"llama.cpp generation failed: {exc}") from exc
            finally:
                es.close()
                result.completion_tokens = es.completion_tokens
                result.finish_reason = {"stop": "stop", "length": "length"}.get(es.finish_reason, "")

        result.chunks = chunks()
        return result

    def close(self) -> None:
        self.engine.close()
