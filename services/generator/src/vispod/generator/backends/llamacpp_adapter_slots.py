"""The GGUF LoRA adapters loaded on a llama.cpp model, and which one its context applies.

Loading, applying and freeing run on the engine's scheduler thread, between rounds; any thread may ask whether
an adapter is servable and ask for it to be retired. A retired adapter takes no new request and is freed once no
sequence (running or waiting) uses it.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Collection
from pathlib import Path

from vispod.generator.backends.llamacpp_native import LlamaEngineError, last_native_error


class AdapterSlots:
    def __init__(self, ll, model, ctx, architecture: str) -> None:
        self._ll = ll
        self._model = model          # llama_cpp._internals.LlamaModel
        self._ctx = ctx              # llama_cpp._internals.LlamaContext
        self._architecture = architecture
        self._adapters: dict[str, object] = {}              # key -> llama_adapter_lora_p
        self._retiring: set[str] = set()
        self._retire_requested: set[str] = set()            # retire asked for, not yet run by the scheduler
        self._lock = threading.Lock()
        self.applied: str | None = None

    # --- any thread ---------------------------------------------------------------------------
    def servable(self, key: str) -> bool:
        return key in self._adapters and key not in self._retiring and key not in self._retire_requested

    def request_retire(self, key: str) -> None:
        with self._lock:
            self._retire_requested.add(key)

    # --- the scheduler thread -----------------------------------------------------------------
    def loaded(self, key: str) -> bool:
        return key in self._adapters

    @property
    def retiring(self) -> bool:
        return bool(self._retiring)

    def load(self, key: str, path: Path) -> None:
        if key in self._adapters:
            self._retiring.discard(key)
            return
        if not path.is_file():
            raise LlamaEngineError(f"adapter file {path} does not exist")
        ptr = self._ll.llama_adapter_lora_init(self._model.model, str(path).encode())
        if not ptr:
            raise LlamaEngineError(f"llama.cpp refused adapter {key} for this {self._architecture} model: "
                                   f"{last_native_error()}")
        self._adapters[key] = ptr

    def retire(self, key: str, in_use: Collection[str | None]) -> None:
        with self._lock:
            self._retire_requested.discard(key)
        if key not in self._adapters:
            return
        self._retiring.add(key)
        self.free_unused(in_use)

    def free_unused(self, in_use: Collection[str | None]) -> None:
        """Frees the retiring adapters no sequence uses."""
        for key in [k for k in self._retiring if k not in in_use]:
            if self.applied == key:
                self.apply(None)
            self._ll.llama_adapter_lora_free(self._adapters.pop(key))
            self._retiring.discard(key)

    def apply(self, key: str | None) -> None:
        """Sets the context's adapter (None: the base model) for the next decode."""
        if key == self.applied:
            return
        if key is None:
            self._ll.llama_set_adapters_lora(self._ctx.ctx, None, 0, None)
        else:
            arr = (self._ll.llama_adapter_lora_p_ctypes * 1)(self._adapters[key])
            scales = (ctypes.c_float * 1)(1.0)
            if self._ll.llama_set_adapters_lora(self._ctx.ctx, arr, 1, scales) != 0:
                raise LlamaEngineError(f"cannot apply adapter {key}")
        self.applied = key

    def free_all(self) -> None:
        for ptr in self._adapters.values():
            self._ll.llama_adapter_lora_free(ptr)
        self._adapters.clear()
