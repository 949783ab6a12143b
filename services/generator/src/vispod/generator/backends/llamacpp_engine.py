"""A batched llama.cpp decoder for GGUF models: parallel sequences, per-request LoRA, scripted steps.

One context holds up to `n_parallel` sequences in its KV cache. A scheduler thread owns the context:
each round it decodes one token (or a chunk of prompt) for every active sequence that uses the same
adapter set, so concurrent requests share each forward pass (batched decoding). LoRA adapters are set
on the context per round, so requests on different adapters interleave round by round and each token
of a request is computed with the adapter that request started with. Adapters are loaded and freed on
the scheduler thread between rounds (llamacpp_adapter_slots); an adapter still used by a sequence is freed
after it finishes. Requests on the same adapter whose prompts start alike share that prefix
(llamacpp_prefix: `share_prefixes=False` where a text must not depend on what runs beside it).

A request is a prompt and a list of steps. Each step appends its text to the sequence as is (labels,
scene markers), then the model writes until a stop string, its end token or the step's limits (words, counted on
the decoded text, and a token bound); `min_words` suppresses the end token and stop strings until that many words
were written. A plain completion is a single step. Tokens are chosen by llamacpp_sampler, seeded per request, so a
seed gives the same text at any concurrency (unless its prompt prefix was shared).
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import _internals

from vispod.generator.backends.base import Step
from vispod.generator.backends.llamacpp_adapter_slots import AdapterSlots
from vispod.generator.backends.llamacpp_native import LlamaEngineError, last_native_error, route_native_logs
from vispod.generator.backends.llamacpp_prefix import PrefixSharing
from vispod.generator.backends.llamacpp_sampler import Sampler, SamplerState, Sampling
from vispod.generator.backends.llamacpp_sequence import Done, Request, Seq
from vispod.generator.backends.llamacpp_steps import StepScript

log = logging.getLogger(__name__)

GROUP_ROUNDS = 32   # rounds an adapter group keeps the context before another group's turn
PREFILL_TOKENS = 128   # prompt tokens a round at most: an adapter load waits for one short round


class _RoundFailed(Exception):
    """A decode failed: it fails the requests of its round, not the engine."""

    def __init__(self, message: str, members: list[Seq]) -> None:
        super().__init__(message)
        self.members = members


class EngineStream:
    """Text chunks of one request; `finish_reason`, token counts set when the iteration ends.
    `close()` (or leaving the iteration early) cancels the request and frees its slot."""

    def __init__(self, request: Request, engine: LlamaEngine) -> None:
        self._req = request
        self._engine = engine
        self.finish_reason = ""
        self.prompt_tokens = len(request.prompt)
        self.completion_tokens = 0
        self.cached_tokens = 0
        self.error = ""

    def __iter__(self) -> Iterator[str]:
        try:
            while True:
                item = self._req.out.get()
                if isinstance(item, Done):
                    self.finish_reason = item.finish_reason
                    self.completion_tokens = item.completion_tokens
                    self.cached_tokens = item.cached_tokens
                    self.error = item.error
                    if item.finish_reason == "error":
                        raise LlamaEngineError(item.error)
                    return
                yield item
        finally:
            if not self.finish_reason:
                self.close()

    def close(self) -> None:
        self._req.cancelled.set()
        self._engine._wake()


class LlamaEngine:
    def __init__(self, model_path: Path, *, n_parallel: int = 4, n_ctx_per_seq: int = 4096, n_batch: int = 512,
                 n_threads: int | None = None, share_prefixes: bool = True) -> None:
        route_native_logs(llama_cpp)
        model_path = Path(model_path)
        if not model_path.is_file():
            raise LlamaEngineError(f"GGUF model {model_path} does not exist")
        started = time.monotonic()
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        try:
            self._model = _internals.LlamaModel(path_model=str(model_path), params=mparams, verbose=False)
        except ValueError as exc:
            raise LlamaEngineError(f"cannot load GGUF model {model_path.name}: {last_native_error()}") from exc
        threads = n_threads or max(1, os.cpu_count() or 1)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_parallel * n_ctx_per_seq
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_seq_max = n_parallel
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.kv_unified = False
        cparams.no_perf = True
        try:
            self._ctx = _internals.LlamaContext(model=self._model, params=cparams, verbose=False)
        except ValueError as exc:
            raise LlamaEngineError(f"cannot create a llama.cpp context: {exc}") from exc
        self.metadata = self._model.metadata()
        self.architecture = self.metadata.get("general.architecture", "")
        self.n_parallel = n_parallel
        self.n_ctx_per_seq = n_ctx_per_seq
        self.n_batch = n_batch
        self.n_vocab = self._model.n_vocab()
        self._vocab = self._model.vocab
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._pieces = [self._piece(t) for t in range(self.n_vocab)]
        self._eog = np.array([llama_cpp.llama_vocab_is_eog(self._vocab, t) for t in range(self.n_vocab)])
        self._sampler = Sampler(self._pieces, self._eog)
        self._prefixes = PrefixSharing(share_prefixes)
        self._steps = StepScript(self.tokenize, self._pieces, self._eog)
        self._slots = AdapterSlots(llama_cpp, self._model, self._ctx, self.architecture)
        self._commands: queue.Queue = queue.Queue()         # callables run on the scheduler thread
        self._waiting: deque[Request] = deque()
        self._active: dict[int, Seq] = {}
        self._free_ids = list(range(n_parallel))
        self._cond = threading.Condition()
        self._group: str | None = None
        self._group_rounds = 0
        self._closed = False
        self.load_seconds = time.monotonic() - started
        self._thread = threading.Thread(target=self._loop, name="llamacpp-scheduler", daemon=True)
        self._thread.start()

    @property
    def share_prefixes(self) -> bool:
        return self._prefixes.enabled

    # --- tokens ------------------------------------------------------------------------------
    def _piece(self, token: int) -> bytes:
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, False)
            if n >= 0:
                return bytes(buf[:n])
            size = -n        # the piece needs this many bytes

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        return self._model.tokenize(text.encode("utf-8"), add_bos, special) if text else []

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self._pieces[t] for t in tokens).decode("utf-8", "replace")

    @property
    def add_bos(self) -> bool:
        return bool(self._model.add_bos_token())

    # --- adapters ----------------------------------------------------------------------------
    def load_adapter(self, key: str, path: Path) -> None:
        """Load a GGUF LoRA adapter under `key` (between rounds); LlamaEngineError if it does not fit the model."""
        self._call(lambda: self._slots.load(key, Path(path)))

    def unload_adapter(self, key: str) -> None:
        """Retire an adapter now (no new request may use it) and free it once no sequence uses it. Returns at
        once: the free happens on the scheduler thread between rounds."""
        with self._cond:
            if self._closed:
                return
            self._slots.request_retire(key)
            self._commands.put((lambda: self._slots.retire(key, self._adapters_in_use()), None))
            self._cond.notify()

    def has_adapter(self, key: str) -> bool:
        return self._slots.servable(key)

    def _adapters_in_use(self) -> set[str | None]:
        with self._cond:
            waiting = [r.adapter for r in self._waiting]
        return {s.req.adapter for s in self._active.values()} | set(waiting)

    def _call(self, fn: Callable[[], None]) -> None:
        done: queue.Queue = queue.Queue()
        with self._cond:
            if self._closed:
                raise LlamaEngineError("the engine is closed")
            self._commands.put((fn, done))
            self._cond.notify()
        ok, exc = done.get()
        if not ok:
            raise exc

    # --- requests ----------------------------------------------------------------------------
    def submit(self, prompt: list[int], steps: list[Step], sampling: Sampling, adapter: str | None = None,
               no_copy: list[list[int]] | None = None) -> EngineStream:
        """`no_copy`: token sequences of which no run of `sampling.no_repeat_ngram` tokens may be written."""
        if not steps:
            raise ValueError("a request needs at least one step")
        if any(not step.text for step in steps[1:]):
            raise ValueError("every step after the first needs text to append (nothing to continue from)")
        if adapter is not None and not self.has_adapter(adapter):
            raise LlamaEngineError(f"adapter {adapter} is not loaded")
        if len(prompt) >= self.n_ctx_per_seq:
            raise ValueError(f"the prompt has {len(prompt)} tokens; this engine's context is {self.n_ctx_per_seq}")
        req = Request(list(prompt), list(steps), sampling, adapter, [list(t) for t in no_copy or ()])
        with self._cond:
            if self._closed:
                raise LlamaEngineError("the engine is closed")
            self._waiting.append(req)
            self._cond.notify()
        return EngineStream(req, self)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=60)
        while not self._commands.empty():  # adapter calls that will never run: answered, not left hanging
            _, done = self._commands.get_nowait()
            if done is not None:
                done.put((False, LlamaEngineError("the engine is closed")))
        for req in list(self._waiting):
            req.out.put(Done("cancelled", len(req.prompt), 0, "engine closed"))
        if self._thread.is_alive():   # still inside a decode: freeing the context now would be unsafe
            log.warning("llama.cpp scheduler did not stop; its memory is left to the process exit")
            return
        llama_cpp.llama_batch_free(self._batch)
        self._slots.free_all()
        self._ctx.close()
        self._model.close()

    # --- scheduler ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._active and not self._waiting and self._commands.empty():
                    self._cond.wait()
                if self._closed:
                    for seq in list(self._active.values()):
                        self._finish(seq, "cancelled")
                    return
            self._run_commands()
            try:
                self._admit()
                self._drop_cancelled()
                if self._active:
                    self._round_once()
            except _RoundFailed as failed:  # a failed decode fails the requests of that round, not the engine
                log.error("llama.cpp decode failed", exc_info=failed.__cause__)
                for seq in failed.members:
                    if seq.seq_id in self._active:
                        self._finish(seq, "error", str(failed))
            except Exception as exc:
                log.exception("llama.cpp scheduler error")
                for seq in list(self._active.values()):
                    self._finish(seq, "error", f"{type(exc).__name__}: {exc}")

    def _run_commands(self) -> None:
        while True:
            try:
                fn, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
                result = (True, None)
            except Exception as exc:
                result = (False, exc)
                if done is None:
                    log.exception("llama.cpp adapter command failed")
            if done is not None:
                done.put(result)

    def _admit(self) -> None:
        with self._cond:
            while self._waiting and self._free_ids:
                req = self._waiting.popleft()
                if req.cancelled.is_set():
                    req.out.put(Done("cancelled", len(req.prompt), 0))
                    continue
                if req.adapter is not None and not self._slots.loaded(req.adapter):
                    req.out.put(Done("error", len(req.prompt), 0, f"adapter {req.adapter} was unloaded"))
                    continue
                seq = Seq(req, self._free_ids.pop(0), SamplerState.seeded(req.sampling))
                for tokens in req.no_copy:
                    seq.sampler.ban_runs_of(tokens)
                seq.pending = list(req.prompt)
                seq.donor, seq.shared = self._prefixes.donor_for(seq, self._active)
                self._active[seq.seq_id] = seq
                self._steps.start(seq, 0)

    def _drop_cancelled(self) -> None:
        for seq in list(self._active.values()):
            if seq.req.cancelled.is_set():
                self._finish(seq, "cancelled")

    def _finish(self, seq: Seq, reason: str, error: str = "") -> None:
        self._ctx.kv_cache_seq_rm(seq.seq_id, -1, -1)
        self._active.pop(seq.seq_id, None)
        self._free_ids.append(seq.seq_id)
        seq.req.out.put(Done(reason, len(seq.req.prompt), seq.completion_tokens, error,
                             seq.shared if seq.donor is None else 0))
        if self._slots.retiring:
            self._slots.free_unused(self._adapters_in_use())

    def _round_once(self) -> None:
        # Sequences on one adapter set share a forward pass. Groups take turns, GROUP_ROUNDS rounds each: changing
        # the context's adapters makes llama.cpp rebuild its compute graph, too costly to do every token.
        self._prefixes.take(self._active, self._ctx)
        groups: dict[str | None, list[Seq]] = {}
        for seq in self._active.values():
            if seq.donor is None:   # a follower waits for its donor's prefix
                groups.setdefault(seq.req.adapter, []).append(seq)
        if not groups:
            return
        keys = sorted(groups, key=lambda k: "" if k is None else k)
        if self._group not in groups or (self._group_rounds >= GROUP_ROUNDS and len(keys) > 1):
            nxt = [k for k in keys if (k or "") > (self._group or "")] if self._group in groups else []
            self._group = (nxt or keys)[0]
            self._group_rounds = 0
        key = self._group
        self._group_rounds += 1
        members = groups[key]
        try:
            self._slots.apply(key)
            self._decode(members)
        except Exception as exc:
            raise _RoundFailed(f"{type(exc).__name__}: {exc}", members) from exc

    def _decode(self, members: list[Seq]) -> None:
        batch = self._batch
        # At most PREFILL_TOKENS of prompt a round: adapter loads and new requests wait for one round, not for a
        # whole long prompt.
        budget = min(self.n_batch, PREFILL_TOKENS + len(members))
        share = max(1, budget // len(members))
        n = 0
        outputs: list[tuple[Seq, int]] = []
        for seq in members:
            take = min(len(seq.pending), share, budget - n)
            if take <= 0:
                continue
            if seq.n_past + take >= self.n_ctx_per_seq:
                self._steps.flush(seq)
                self._finish(seq, "length")
                continue
            chunk, seq.pending = seq.pending[:take], seq.pending[take:]
            seq.sampler.feed(chunk[max(0, len(seq.req.prompt) - seq.n_past):])
            for j, tok in enumerate(chunk):
                batch.token[n] = tok
                batch.pos[n] = seq.n_past + j
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq.seq_id
                last = j == take - 1 and not seq.pending
                batch.logits[n] = 1 if last else 0
                if last:
                    outputs.append((seq, n))
                n += 1
            seq.n_past += take
        if n == 0:
            return
        batch.n_tokens = n
        rc = llama_cpp.llama_decode(self._ctx.ctx, batch)
        if rc != 0:
            raise LlamaEngineError(f"llama_decode returned {rc}")
        for seq, i in outputs:
            ptr = llama_cpp.llama_get_logits_ith(self._ctx.ctx, i)
            logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
            token = self._sampler.sample(logits, seq.sampler, seq.step, seq.step_words)
            if (reason := self._steps.take(seq, token)) is not None:
                self._finish(seq, reason)
