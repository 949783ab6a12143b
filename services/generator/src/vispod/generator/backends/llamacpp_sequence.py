"""A request to the llama.cpp engine, its end, and its state once admitted into a KV slot."""

from __future__ import annotations

import codecs
import queue
import threading
from dataclasses import dataclass, field

from vispod.generator.backends.base import Step
from vispod.generator.backends.llamacpp_sampler import SamplerState, Sampling


@dataclass
class Request:
    prompt: list[int]
    steps: list[Step]
    sampling: Sampling
    adapter: str | None
    no_copy: list[list[int]] = field(default_factory=list)   # token runs the sampler may not repeat
    out: queue.Queue = field(default_factory=queue.Queue)   # str chunks, then a Done
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Done:
    finish_reason: str          # stop | length | cancelled | error
    prompt_tokens: int
    completion_tokens: int
    error: str = ""
    cached_tokens: int = 0      # prompt tokens taken from another request's KV cache, not computed


@dataclass
class Seq:
    """A request admitted into a KV slot."""

    req: Request
    seq_id: int
    sampler: SamplerState
    pending: list[int] = field(default_factory=list)   # tokens to feed before the next sample
    n_past: int = 0
    step_index: int = -1
    step_tokens: int = 0
    step_words: int = 0
    step_text: str = ""
    emitted_upto: int = 0
    decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    completion_tokens: int = 0
    last_char: str = ""
    donor: Seq | None = None       # waiting for this sequence to compute the shared prompt prefix
    shared: int = 0                # tokens of prompt prefix taken (or to take) from the donor

    @property
    def step(self) -> Step:
        return self.req.steps[self.step_index]
