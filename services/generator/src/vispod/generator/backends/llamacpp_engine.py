"""A batched llama.cpp decoder for GGUF models: parallel sequences, per-request LoRA, scripted steps.

One context holds up to `n_parallel` sequences in its KV cache. A scheduler thread owns the context:
each round it decodes one token (or a chunk of prompt) for every active sequence that uses the same
adapter set, so concurrent requests share each forward pass (batched decoding). LoRA adapters are set
on the context per round, so requests on different adapters interleave round by round and each token
of a request is computed with the adapter that request started with. Adapters are loaded and freed on
the scheduler thread between rounds; an adapter still used by a sequence is freed after it finishes.

Requests on the same adapter whose prompts start alike (the system prompt and instructions) share that prefix:
a request admitted while another one holds the prefix waits until that one has computed it, then takes a copy
of its KV cache up to the common length and prefills only the rest (`cached_tokens` on its stream). The copy is
exact, but the prompt is then computed in other batches than alone, which moves its numbers by float rounding:
`share_prefixes=False` where a text must not depend on what runs beside it.

A request is a prompt and a list of steps. Each step appends its text to the sequence as is (labels,
scene markers), then the model writes until a stop string, the step's token limit or its end token;
`min_new_tokens` suppresses the end token and stop strings until that many tokens were written. A
plain completion is a single step. Sampling is done here (numpy): greedy at temperature 0, otherwise
top-k, temperature, top-p with a generator seeded per request, so a seed gives the same text at any
concurrency (unless its prompt prefix was shared, see above).
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vispod.generator.backends.base import Step

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """The model or an adapter could not be loaded, or decoding failed."""


_NATIVE_ERRORS: deque[str] = deque(maxlen=20)   # llama.cpp's recent warnings and errors, for error messages
_log_callback = None


def _route_native_logs(ll) -> None:
    """llama.cpp logs go to our logger (warnings and errors only), not to stderr; kept for error messages."""
    global _log_callback
    if _log_callback is not None:
        return

    @ll.llama_log_callback
    def callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        if level in (3, 4):   # GGML_LOG_LEVEL_WARN, _ERROR
            line = text.decode("utf-8", "replace").strip()
            if line:
                _NATIVE_ERRORS.append(line)
                log.warning("llama.cpp: %s", line)

    _log_callback = callback
    ll.llama_log_set(callback, ctypes.c_void_p(0))


def _last_native_error() -> str:
    return _NATIVE_ERRORS[-1] if _NATIVE_ERRORS else "no detail from llama.cpp"


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 40
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    # No n-gram of this many tokens may occur twice in what follows the prompt (the model's tokens and the
    # steps' scaffold text): no looped sentence, no copy of a scaffold line. The prompt itself is not counted:
    # whether a model echoes its prompt is the model's, and measured. 0: off.
    no_repeat_ngram: int = 0
    seed: int = 0


@dataclass
class _Request:
    prompt: list[int]
    steps: list[Step]
    sampling: Sampling
    adapter: str | None
    out: queue.Queue = field(default_factory=queue.Queue)   # str chunks, then a _Done
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class _Done:
    finish_reason: str          # stop | length | cancelled | error
    prompt_tokens: int
    completion_tokens: int
    error: str = ""
    cached_tokens: int = 0      # prompt tokens taken from another request's KV cache, not computed


class EngineStream:
    """Text chunks of one request; `finish_reason`, token counts set when the iteration ends.
    `close()` (or leaving the iteration early) cancels the request and frees its slot."""

    def __init__(self, request: _Request, engine: LlamaEngine) -> None:
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
                if isinstance(item, _Done):
                    self.finish_reason = item.finish_reason
                    self.completion_tokens = item.completion_tokens
                    self.cached_tokens = item.cached_tokens
                    self.error = item.error
                    if item.finish_reason == "error":
                        raise EngineError(item.error)
                    return
                yield item
        finally:
            if not self.finish_reason:
                self.close()

    def close(self) -> None:
        self._req.cancelled.set()
        self._engine._wake()


@dataclass
class _Seq:
    """A request admitted into a KV slot."""

    req: _Request
    seq_id: int
    rng: np.random.Generator
    pending: list[int] = field(default_factory=list)   # tokens to feed before the next sample
    n_past: int = 0
    step_index: int = -1
    step_tokens: int = 0
    step_text: str = ""
    emitted_upto: int = 0
    decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    recent: deque = field(default_factory=lambda: deque(maxlen=256))
    history: list[int] = field(default_factory=list)     # tokens fed after the prompt (no_repeat_ngram only)
    ngrams: dict[tuple[int, ...], set[int]] = field(default_factory=dict)   # (n-1)-gram -> tokens seen after it
    completion_tokens: int = 0
    last_char: str = ""
    wants_logits: bool = False
    donor: _Seq | None = None      # waiting for this sequence to compute the shared prompt prefix
    shared: int = 0                # tokens of prompt prefix taken (or to take) from the donor

    @property
    def step(self) -> Step:
        return self.req.steps[self.step_index]


class LlamaEngine:
    def __init__(self, model_path: Path, *, n_parallel: int = 4, n_ctx_per_seq: int = 4096, n_batch: int = 512,
                 n_threads: int | None = None, share_prefixes: bool = True) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._ll = llama_cpp
        _route_native_logs(llama_cpp)
        model_path = Path(model_path)
        if not model_path.is_file():
            raise EngineError(f"GGUF model {model_path} does not exist")
        started = time.monotonic()
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        try:
            self._model = _internals.LlamaModel(path_model=str(model_path), params=mparams, verbose=False)
        except ValueError as exc:
            raise EngineError(f"cannot load GGUF model {model_path.name}: {_last_native_error()}") from exc
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
            raise EngineError(f"cannot create a llama.cpp context: {exc}") from exc
        self.metadata = self._model.metadata()
        self.architecture = self.metadata.get("general.architecture", "")
        self.n_parallel = n_parallel
        self.share_prefixes = share_prefixes
        self.n_ctx_per_seq = n_ctx_per_seq
        self.n_batch = n_batch
        self.n_vocab = self._model.n_vocab()
        self._vocab = self._model.vocab
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._pieces = [self._piece(t) for t in range(self.n_vocab)]
        self._eog = np.array([llama_cpp.llama_vocab_is_eog(self._vocab, t) for t in range(self.n_vocab)])
        self._stop_masks: dict[tuple[tuple[str, ...], bool], np.ndarray] = {}
        self._adapters: dict[str, object] = {}              # key -> llama_adapter_lora_p
        self._retiring: set[str] = set()
        self._retire_requested: set[str] = set()            # unload called, not yet run by the scheduler
        self._applied: str | None = None
        self._commands: queue.Queue = queue.Queue()         # callables run on the scheduler thread
        self._waiting: deque[_Request] = deque()
        self._active: dict[int, _Seq] = {}
        self._free_ids = list(range(n_parallel))
        self._cond = threading.Condition()
        self._group: str | None = None
        self._group_rounds = 0
        self._closed = False
        self.load_seconds = time.monotonic() - started
        self._thread = threading.Thread(target=self._loop, name="llamacpp-scheduler", daemon=True)
        self._thread.start()

    # --- tokens ------------------------------------------------------------------------------
    def _piece(self, token: int) -> bytes:
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._ll.llama_token_to_piece(self._vocab, token, buf, size, 0, False)
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

    def _stop_mask(self, stops: tuple[str, ...]) -> np.ndarray:
        """Tokens that end the step: end-of-generation tokens and tokens whose text holds a stop string."""
        return self._piece_mask(stops, with_eog=True)

    def _piece_mask(self, needles: tuple[str, ...], *, with_eog: bool = False) -> np.ndarray:
        """Tokens whose text holds one of `needles` (and the end-of-generation tokens if asked)."""
        mask = self._stop_masks.get((needles, with_eog))
        if mask is None:
            mask = self._eog.copy() if with_eog else np.zeros(self.n_vocab, dtype=bool)
            for s in needles:
                needle = s.encode("utf-8")
                for t, piece in enumerate(self._pieces):
                    if needle in piece:
                        mask[t] = True
            self._stop_masks[(needles, with_eog)] = mask
        return mask

    # --- adapters ----------------------------------------------------------------------------
    def load_adapter(self, key: str, path: Path) -> None:
        """Load a GGUF LoRA adapter under `key` (between rounds); EngineError if it does not fit the model."""
        self._call(lambda: self._do_load(key, Path(path)))

    def unload_adapter(self, key: str) -> None:
        """Retire an adapter now (no new request may use it) and free it once no sequence uses it. Returns at
        once: the free happens on the scheduler thread between rounds."""
        with self._cond:
            if self._closed:
                return
            self._retire_requested.add(key)
            self._commands.put((lambda: self._do_unload(key), None))
            self._cond.notify()

    def has_adapter(self, key: str) -> bool:
        return key in self._adapters and key not in self._retiring and key not in self._retire_requested

    def _do_load(self, key: str, path: Path) -> None:
        if key in self._adapters:
            self._retiring.discard(key)
            return
        if not path.is_file():
            raise EngineError(f"adapter file {path} does not exist")
        ptr = self._ll.llama_adapter_lora_init(self._model.model, str(path).encode())
        if not ptr:
            raise EngineError(f"llama.cpp refused adapter {key} for this {self.architecture} model: "
                              f"{_last_native_error()}")
        self._adapters[key] = ptr

    def _do_unload(self, key: str) -> None:
        with self._cond:
            self._retire_requested.discard(key)
        if key not in self._adapters:
            return
        self._retiring.add(key)
        self._free_retired()

    def _free_retired(self) -> None:
        with self._cond:
            waiting = [r.adapter for r in self._waiting]
        in_use = {s.req.adapter for s in self._active.values()} | set(waiting)
        for key in [k for k in self._retiring if k not in in_use]:
            if self._applied == key:
                self._set_adapter(None)
            self._ll.llama_adapter_lora_free(self._adapters.pop(key))
            self._retiring.discard(key)

    def _call(self, fn) -> None:
        done: queue.Queue = queue.Queue()
        with self._cond:
            if self._closed:
                raise EngineError("the engine is closed")
            self._commands.put((fn, done))
            self._cond.notify()
        ok, exc = done.get()
        if not ok:
            raise exc

    def _set_adapter(self, key: str | None) -> None:
        if key == self._applied:
            return
        if key is None:
            self._ll.llama_set_adapters_lora(self._ctx.ctx, None, 0, None)
        else:
            arr = (self._ll.llama_adapter_lora_p_ctypes * 1)(self._adapters[key])
            scales = (ctypes.c_float * 1)(1.0)
            if self._ll.llama_set_adapters_lora(self._ctx.ctx, arr, 1, scales) != 0:
                raise EngineError(f"cannot apply adapter {key}")
        self._applied = key

    # --- requests ----------------------------------------------------------------------------
    def submit(self, prompt: list[int], steps: list[Step], sampling: Sampling, adapter: str | None = None
               ) -> EngineStream:
        if not steps:
            raise ValueError("a request needs at least one step")
        if any(not step.text for step in steps[1:]):
            raise ValueError("every step after the first needs text to append (nothing to continue from)")
        if adapter is not None and not self.has_adapter(adapter):
            raise EngineError(f"adapter {adapter} is not loaded")
        if len(prompt) >= self.n_ctx_per_seq:
            raise ValueError(f"the prompt has {len(prompt)} tokens; this engine's context is {self.n_ctx_per_seq}")
        req = _Request(list(prompt), list(steps), sampling, adapter)
        with self._cond:
            if self._closed:
                raise EngineError("the engine is closed")
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
                done.put((False, EngineError("the engine is closed")))
        for req in list(self._waiting):
            req.out.put(_Done("cancelled", len(req.prompt), 0, "engine closed"))
        if self._thread.is_alive():   # still inside a decode: freeing the context now would be unsafe
            log.warning("llama.cpp scheduler did not stop; its memory is left to the process exit")
            return
        self._ll.llama_batch_free(self._batch)
        for ptr in self._adapters.values():
            self._ll.llama_adapter_lora_free(ptr)
        self._adapters.clear()
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
                    req.out.put(_Done("cancelled", len(req.prompt), 0))
                    continue
                if req.adapter is not None and req.adapter not in self._adapters:
                    req.out.put(_Done("error", len(req.prompt), 0, f"adapter {req.adapter} was unloaded"))
                    continue
                seq = _Seq(req, self._free_ids.pop(0), np.random.default_rng(req.sampling.seed))
                seq.pending = list(req.prompt)
                seq.donor, seq.shared = self._prefix_donor(seq)
                self._active[seq.seq_id] = seq
                self._start_step(seq, 0)

    def _prefix_donor(self, seq: _Seq) -> tuple[_Seq | None, int]:
        """The active sequence on the same adapter sharing the longest prompt prefix (at least MIN_SHARED_PREFIX
        tokens; never the whole prompt: its last token must be computed for the first logits)."""
        if not self.share_prefixes:
            return None, 0
        best, best_len = None, 0
        prompt = seq.req.prompt
        for other in self._active.values():
            if other.donor is not None or other.req.adapter != seq.req.adapter:
                continue
            common = _common_prefix(prompt, other.req.prompt, len(prompt) - 1)
            if common > best_len:
                best, best_len = other, common
        return (best, best_len) if best_len >= MIN_SHARED_PREFIX else (None, 0)

    def _take_shared_prefixes(self) -> None:
        """Followers whose donor has computed the shared prefix copy its KV cache up to there; followers whose
        donor is gone compute their prompt themselves."""
        for seq in list(self._active.values()):
            donor = seq.donor
            if donor is None:
                continue
            if self._active.get(donor.seq_id) is not donor:
                seq.donor, seq.shared = None, 0
            elif donor.n_past >= seq.shared:
                # Streams are separate (kv_unified off): the copy takes the donor's whole stream, then the
                # positions past the shared prefix are dropped.
                self._ctx.kv_cache_seq_cp(donor.seq_id, seq.seq_id, -1, -1)
                self._ctx.kv_cache_seq_rm(seq.seq_id, seq.shared, -1)
                seq.n_past = seq.shared
                seq.pending = seq.pending[seq.shared:]
                seq.donor = None

    def _drop_cancelled(self) -> None:
        for seq in list(self._active.values()):
            if seq.req.cancelled.is_set():
                self._finish(seq, "cancelled")

    def _start_step(self, seq: _Seq, index: int) -> None:
        seq.step_index = index
        seq.step_tokens = 0
        seq.step_text = ""
        seq.emitted_upto = 0
        text = seq.step.text
        if seq.step.new_line and seq.last_char not in ("", "\n") and not text.startswith("\n"):
            text = "\n" + text
        if text:
            seq.pending.extend(self.tokenize(text))
            if seq.step.echo:
                self._emit(seq, text)
            else:
                seq.last_char = text[-1]

    def _emit(self, seq: _Seq, text: str) -> None:
        if text:
            seq.req.out.put(text)
            seq.last_char = text[-1]

    def _finish(self, seq: _Seq, reason: str, error: str = "") -> None:
        self._ctx.kv_cache_seq_rm(seq.seq_id, -1, -1)
        self._active.pop(seq.seq_id, None)
        self._free_ids.append(seq.seq_id)
        seq.req.out.put(_Done(reason, len(seq.req.prompt), seq.completion_tokens, error,
                              seq.shared if seq.donor is None else 0))
        if self._retiring:
            self._free_retired()

    def _round_once(self) -> None:
        # Sequences on one adapter set share a forward pass. Groups take turns, GROUP_ROUNDS rounds each: changing
        # the context's adapters makes llama.cpp rebuild its compute graph, too costly to do every token.
        self._take_shared_prefixes()
        groups: dict[str | None, list[_Seq]] = {}
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
            self._set_adapter(key)
            self._decode(members)
        except Exception as exc:
            raise _RoundFailed(f"{type(exc).__name__}: {exc}", members) from exc

    def _decode(self, members: list[_Seq]) -> None:
        ll = self._ll
        batch = self._batch
        # At most PREFILL_TOKENS of prompt a round: adapter loads and new requests wait for one round, not for a
        # whole long prompt.
        budget = min(self.n_batch, PREFILL_TOKENS + len(members))
        share = max(1, budget // len(members))
        n = 0
        outputs: list[tuple[_Seq, int]] = []
        for seq in members:
            take = min(len(seq.pending), share, budget - n)
            if take <= 0:
                continue
            if seq.n_past + take >= self.n_ctx_per_seq:
                if seq.step_index >= 0 and seq.emitted_upto < len(seq.step_text):
                    self._emit(seq, seq.step_text[seq.emitted_upto:])
                self._finish(seq, "length")
                continue
            chunk, seq.pending = seq.pending[:take], seq.pending[take:]
            if seq.req.sampling.no_repeat_ngram:
                _index_ngrams(seq, chunk[max(0, len(seq.req.prompt) - seq.n_past):])
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
        rc = ll.llama_decode(self._ctx.ctx, batch)
        if rc != 0:
            raise EngineError(f"llama_decode returned {rc}")
        for seq, i in outputs:
            ptr = ll.llama_get_logits_ith(self._ctx.ctx, i)
            logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
            self._after_sample(seq, self._sample(seq, logits))

    def _sample(self, seq: _Seq, logits: np.ndarray) -> int:
        s = seq.req.sampling
        step = seq.step
        x = logits.astype(np.float32, copy=True)
        if seq.step_tokens < step.min_new_tokens:
            x[self._stop_mask(step.stop)] = -np.inf
        if step.forbid:
            x[self._piece_mask(step.forbid)] = -np.inf
        if s.no_repeat_ngram and len(seq.history) >= s.no_repeat_ngram - 1:
            banned = seq.ngrams.get(tuple(seq.history[len(seq.history) - s.no_repeat_ngram + 1:]))
            if banned:
                x[list(banned)] = -np.inf
        if s.repeat_penalty != 1.0 and seq.recent:
            recent = np.fromiter(list(seq.recent)[-s.repeat_last_n:], dtype=np.int64)
            vals = x[recent]
            x[recent] = np.where(vals > 0, vals / s.repeat_penalty, vals * s.repeat_penalty)
        if s.temperature <= 0:
            return int(np.argmax(x))
        k = min(s.top_k, x.size) if s.top_k > 0 else x.size
        top = np.argpartition(-x, k - 1)[:k]
        top = top[np.argsort(-x[top])]
        z = x[top] / s.temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        if s.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(p), s.top_p)) + 1
            p = p[:keep] / p[:keep].sum()
            top = top[:keep]
        return int(top[seq.rng.choice(len(p), p=p)])

    def _after_sample(self, seq: _Seq, token: int) -> None:
        step = seq.step
        seq.completion_tokens += 1
        seq.step_tokens += 1
        seq.recent.append(token)
        if self._eog[token]:
            self._emit(seq, seq.step_text[seq.emitted_upto:])
            self._end_step(seq, "stop")
            return
        seq.pending.append(token)
        seq.step_text += seq.decoder.decode(self._pieces[token])
        hit = _find_stop(seq.step_text, step.stop, seq.emitted_upto) if seq.step_tokens >= step.min_new_tokens \
            else None
        if hit is not None:
            end = hit
            if seq.step_index < len(seq.req.steps) - 1:
                # Mid-script the stop string stays in the text, as it stays in the sequence.
                end = hit + next(len(s) for s in step.stop if seq.step_text.startswith(s, hit))
            self._emit(seq, seq.step_text[seq.emitted_upto:end])
            self._end_step(seq, "stop")
            return
        # Hold back what could be the start of a stop string.
        hold = max((len(s) - 1 for s in step.stop), default=0)
        safe = len(seq.step_text) - hold
        if safe > seq.emitted_upto:
            self._emit(seq, seq.step_text[seq.emitted_upto:safe])
            seq.emitted_upto = safe
        if step.end_sentence_after and seq.step_tokens >= step.end_sentence_after \
                and seq.step_text.rstrip().endswith(_SENTENCE_ENDS):
            self._emit(seq, seq.step_text[seq.emitted_upto:])
            self._end_step(seq, "stop")
            return
        if seq.step_tokens >= step.max_new_tokens:
            self._emit(seq, seq.step_text[seq.emitted_upto:])
            self._end_step(seq, "length")

    def _end_step(self, seq: _Seq, reason: str) -> None:
        tail = seq.decoder.decode(b"", final=True)
        if tail and reason == "length":
            self._emit(seq, tail)
        seq.decoder.reset()
        if seq.step_index == len(seq.req.steps) - 1:
            self._finish(seq, reason)
            return
        # An end token is not fed back: the next step continues from what the model wrote before it.
        self._start_step(seq, seq.step_index + 1)


_SENTENCE_ENDS = (".", "!", "?", "…", '."', '!"', '?"', ".”", "!”", "?”")


class _RoundFailed(Exception):
    def __init__(self, message: str, members: list[_Seq]) -> None:
        super().__init__(message)
        self.members = members


GROUP_ROUNDS = 32   # rounds an adapter group keeps the context before another group's turn
PREFILL_TOKENS = 128   # prompt tokens a round at most: an adapter load waits for one short round
MIN_SHARED_PREFIX = 32  # a shorter common prompt prefix is computed again rather than copied


def _common_prefix(a: list[int], b: list[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _index_ngrams(seq: _Seq, tokens: list[int]) -> None:
    n = seq.req.sampling.no_repeat_ngram
    h = seq.history
    for tok in tokens:
        h.append(tok)
        if len(h) >= n:
            seq.ngrams.setdefault(tuple(h[len(h) - n:len(h) - 1]), set()).add(tok)


def _find_stop(text: str, stops: tuple[str, ...], start: int) -> int | None:
    """Index of the earliest stop string in text (searching from a little before `start`), else None."""
    best = None
    for s in stops:
        i = text.find(s, max(0, start - len(s)))
        if i >= 0 and (best is None or i < best):
            best = i
    return best
