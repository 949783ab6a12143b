"""The backend contract: a prompt (+ images) in, a stream of text chunks out."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from vispod.common.errors import Unavailable
from vispod.v1 import events_pb2

if TYPE_CHECKING:
    from PIL import Image

    from vispod.generator.adapters import AdapterVersion


class BackendError(Exception):
    """Permanent failure of one request (bad request, adapter not servable): reported as a FAILED result."""


class BackendUnavailable(Unavailable):
    """The engine could not be reached or stayed overloaded after retries: the caller may try again later."""


@dataclass(frozen=True)
class Step:
    """One step of a scripted generation: append `text`, then the model writes until a stop string, its end token,
    a sentence end after `soft_words`, `max_words` or the `max_new_tokens` safety bound.

    Limits count the words (whitespace-separated) of the text the model wrote in this step, the step's own text
    not included, so that models with different tokenizers write turns of the same length. Before `min_words`
    the end token and the stop strings are not sampled. 0 turns a word limit off."""

    text: str
    max_new_tokens: int          # a safety bound on tokens; the word limits decide the length
    min_words: int = 0
    soft_words: int = 0          # > 0: after this many words, the step ends at the first sentence end
    max_words: int = 0           # > 0: the step ends before a token that would start a word beyond it
    stop: tuple[str, ...] = ()
    new_line: bool = False      # start `text` on a new line when the output so far does not end with one
    echo: bool = True           # the step's text is part of the output stream
    forbid: tuple[str, ...] = ()  # tokens whose text holds one of these strings are never sampled in this step


@dataclass
class GenerationInput:
    system: str
    user: str                                     # the instruction (images come before it)
    images: list[Image.Image] = field(default_factory=list)   # pixel mode, story order
    image_bytes: list[tuple[bytes, str]] = field(default_factory=list)  # (bytes, mime) for remote engines
    max_new_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    adapter: AdapterVersion | None = None
    deadline: float | None = None               # time.monotonic() by which generation must stop
    prefill: str = ""                            # the answer starts with this (backends with supports_prefill)
    stop: tuple[str, ...] = ()                   # stop strings (backends with supports_steps)
    # A scripted generation (backends with supports_steps): the stream then carries each step's text too.
    steps: list[Step] = field(default_factory=list)
    # Texts of the prompt the model must not copy (the few-shot example's turns): with no_repeat_ngram (llama.cpp),
    # no run of that many tokens of them is written.
    no_copy: tuple[str, ...] = ()


@dataclass
class GenerationStream:
    """Iterate for text chunks; after the iteration, usage and finish_reason are set."""

    chunks: Iterator[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""          # "stop" | "length" | ""

    def __iter__(self) -> Iterator[str]:
        return self.chunks

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class Backend(Protocol):
    name: str                   # local | llamacpp | tgi | openai
    model: str                  # the base model's label, recorded in DialogueGenerated.model
    input_mode: int             # events_pb2.InputMode
    random_weights: bool
    supports_prefill: bool      # can start the model's answer with given text (e.g. the first speaker label)
    supports_steps: bool        # runs scripted steps (GenerationInput.steps) and stop strings

    def stream(self, inp: GenerationInput) -> GenerationStream: ...

    def servable(self, adapter_id: str) -> bool: ...

    def on_adapter_loaded(self, adapter: AdapterVersion) -> None: ...

    def on_adapter_retired(self, adapter_id: str) -> None: ...

    def close(self) -> None: ...


PIXELS = events_pb2.INPUT_MODE_PIXELS
CAPTIONS = events_pb2.INPUT_MODE_CAPTIONS


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_to_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
