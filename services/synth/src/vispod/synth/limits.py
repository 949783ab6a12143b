"""Request validation: one function for gRPC and Kafka, so both refuse the same things for the same reasons."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vispod.common.errors import InvalidArgument
from vispod.synth.settings import SynthSettings

MAX_SEED = 2**63 - 1


class RequestError(InvalidArgument):
    """A request the service will never fulfil as asked; the message says which field and why
    (INVALID_ARGUMENT over gRPC, a dead letter on Kafka)."""


@dataclass(frozen=True)
class SynthRequest:
    """A validated request with defaults filled in."""

    prompts: tuple[str, ...]
    negative_prompt: str
    width: int
    height: int
    steps: int
    guidance: float
    seed: int

    def image_seed(self, index: int) -> int:
        """The seed of prompt `index`: request seed + index, so one image never depends on its neighbours."""
        return (self.seed + index) % (MAX_SEED + 1)


def validate_request(
    prompts: list[str] | tuple[str, ...],
    negative_prompt: str,
    width: int,
    height: int,
    steps: int,
    guidance: float,
    seed: int,
    limits: SynthSettings,
) -> SynthRequest:
    """Check a request against `limits`; 0 for width/height/steps/guidance means "the configured default"."""
    if not prompts:
        raise RequestError("prompts: at least one prompt is required")
    if len(prompts) > limits.max_prompts:
        raise RequestError(f"prompts: {len(prompts)} prompts exceed the limit of {limits.max_prompts}")
    for i, prompt in enumerate(prompts):
        if not prompt.strip():
            raise RequestError(f"prompts[{i}]: empty prompt")
        if len(prompt) > limits.max_prompt_chars:
            raise RequestError(f"prompts[{i}]: {len(prompt)} characters exceed the limit of {limits.max_prompt_chars}")
    if len(negative_prompt) > limits.max_prompt_chars:
        raise RequestError(
            f"negative_prompt: {len(negative_prompt)} characters exceed the limit of {limits.max_prompt_chars}"
        )
    width = width or limits.default_width
    height = height or limits.default_height
    for name, side in (("width", width), ("height", height)):
        if side < 8:
            raise RequestError(f"{name}: {side} is below 8 pixels")
        if side % 8:
            raise RequestError(f"{name}: {side} is not a multiple of 8")
        if side > limits.max_side:
            raise RequestError(f"{name}: {side} exceeds the limit of {limits.max_side}")
    if width * height > limits.max_pixels:
        raise RequestError(f"width*height: {width * height} pixels exceed the limit of {limits.max_pixels}")
    steps = steps or limits.default_steps
    if steps < 1:
        raise RequestError(f"steps: {steps} is below 1")
    if steps > limits.max_steps:
        raise RequestError(f"steps: {steps} exceed the limit of {limits.max_steps}")
    if math.isnan(guidance) or math.isinf(guidance):
        raise RequestError("guidance: must be a finite number")
    if guidance < 0:
        raise RequestError(f"guidance: {guidance} is negative")
    guidance = guidance or limits.default_guidance
    if guidance > limits.max_guidance:
        raise RequestError(f"guidance: {guidance} exceeds the limit of {limits.max_guidance}")
    if seed < 0:
        raise RequestError(f"seed: {seed} is negative")
    return SynthRequest(
        tuple(prompts), negative_prompt, int(width), int(height), int(steps), float(guidance), int(seed)
    )


def request_from_proto(msg: Any, limits: SynthSettings) -> SynthRequest:
    """Validate a SynthesisRequested (the Kafka event, also the body of the gRPC SynthesizeRequest)."""
    return validate_request(
        list(msg.prompts), msg.negative_prompt, msg.width, msg.height, msg.steps, msg.guidance, msg.seed, limits
    )
