"""Turns a pair into model inputs: chat messages with the images in order → processor → ids, pixels, labels.

The prompt (system, instructions, image tokens, the assistant header) is rendered by the processor's own chat
template with add_generation_prompt, and the dialogue is tokenised on its own and appended, so the boundary between
"masked" and "learned" tokens is exact by construction: labels are the dialogue's ids (plus the end-of-turn token,
so the model learns to stop) and -100 everywhere else, padding included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from vispod.trainer.dataset import DatasetError, Pair

IGNORE_INDEX = -100
_SENTINEL = "\x00VISPOD_SENTINEL\x00"


@dataclass
class Encoded:
    line: int
    input_ids: torch.Tensor       # (L,) long
    labels: torch.Tensor          # (L,) long, IGNORE_INDEX outside the dialogue
    pixel_values: torch.Tensor | None    # (patches, dim); None for a text-only model
    image_grid_thw: torch.Tensor | None  # (images, 3)
    mm_token_type_ids: torch.Tensor | None
    truncated: bool


@dataclass(frozen=True)
class Skipped:
    line: int
    reason: str  # "too_long" or "prompt_too_long"


def build_messages(pair: Pair) -> list[dict[str, Any]]:
    """The user turn as chat parts, images in their <image> tag order (images go to the processor separately)."""
    content: list[dict[str, Any]] = []
    for part in pair.prompt_parts:
        content.append({"type": "image"} if isinstance(part, int) else {"type": "text", "text": part})
    messages: list[dict[str, Any]] = []
    if pair.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": pair.system}]})
    messages.append({"role": "user", "content": content})
    return messages


def _end_of_turn_ids(processor: Any) -> list[int]:
    """The ids the template puts right after an assistant message, up to its first special token (<|im_end|>)."""
    tok = processor.tokenizer
    msgs = [{"role": "user", "content": [{"type": "text", "text": "x"}]},
            {"role": "assistant", "content": [{"type": "text", "text": _SENTINEL}]}]
    try:
        rendered = processor.apply_chat_template(msgs, tokenize=False)
        tail = rendered.split(_SENTINEL, 1)[1]
        ids = tok(tail, add_special_tokens=False)["input_ids"]
        special = set(tok.all_special_ids)
        for i, t in enumerate(ids):
            if t in special:
                return ids[: i + 1]
    except (IndexError, ValueError, TypeError):
        pass
    if tok.eos_token_id is None:
        raise ValueError("cannot tell the end-of-turn token: no chat template marker and no eos token")
    return [tok.eos_token_id]


class PairEncoder:
    def __init__(self, processor: Any, *, max_length: int, overflow: str = "truncate", min_dialogue_tokens: int = 16,
                 label_end_of_turn: bool = True) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.max_length = max_length
        self.overflow = overflow
        self.min_dialogue_tokens = min_dialogue_tokens
        self.end_of_turn = _end_of_turn_ids(processor) if label_end_of_turn else []
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else self.tokenizer.eos_token_id

    def prompt_text(self, pair: Pair) -> str:
        return self.processor.apply_chat_template(build_messages(pair), tokenize=False, add_generation_prompt=True)

    def encode(self, pair: Pair) -> Encoded | Skipped:
        images = []
        for path in pair.images:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        enc = self.processor(text=[self.prompt_text(pair)], images=images or None, return_tensors="pt")
        prompt_ids = enc["input_ids"][0]
        dialogue_ids = self.tokenizer(pair.dialogue, add_special_tokens=False)["input_ids"]
        answer = list(dialogue_ids) + self.end_of_turn
        truncated = False
        room = self.max_length - len(prompt_ids)
        if len(answer) > room:
            if room < self.min_dialogue_tokens:
                return Skipped(pair.line, "prompt_too_long")
            if self.overflow == "error":
                raise DatasetError(f"pairs.jsonl:{pair.line}: {len(prompt_ids) + len(answer)} tokens exceed "
                                   f"max_length {self.max_length} (overflow policy 'error')")
            if self.overflow == "skip":
                return Skipped(pair.line, "too_long")
            # A cut dialogue did not end: keep its head, and no end-of-turn token (don't teach stopping mid-sentence).
            answer = list(dialogue_ids[:room])
            truncated = True
        answer_t = torch.tensor(answer, dtype=torch.long)
        input_ids = torch.cat([prompt_ids, answer_t])
        labels = torch.cat([torch.full_like(prompt_ids, IGNORE_INDEX), answer_t])
        mm = enc.get("mm_token_type_ids")
        if mm is not None:
            mm = torch.cat([mm[0], torch.zeros(len(answer_t), dtype=mm.dtype)])
        return Encoded(line=pair.line, input_ids=input_ids, labels=labels, pixel_values=enc.get("pixel_values"),
                       image_grid_thw=enc.get("image_grid_thw"), mm_token_type_ids=mm, truncated=truncated)


def collate(samples: list[Encoded], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pads a micro-batch; padding gets attention 0 and label IGNORE_INDEX."""
    length = max(len(s.input_ids) for s in samples)
    n = len(samples)
    input_ids = torch.full((n, length), pad_token_id, dtype=torch.long)
    labels = torch.full((n, length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((n, length), dtype=torch.long)
    batch: dict[str, torch.Tensor] = {}
    with_mm = all(s.mm_token_type_ids is not None for s in samples)
    mm = torch.zeros((n, length), dtype=samples[0].mm_token_type_ids.dtype) if with_mm else None
    for i, s in enumerate(samples):
        k = len(s.input_ids)
        input_ids[i, :k] = s.input_ids
        labels[i, :k] = s.labels
        attention[i, :k] = 1
        if mm is not None:
            mm[i, :k] = s.mm_token_type_ids
    batch.update(input_ids=input_ids, labels=labels, attention_mask=attention)
    if any(s.pixel_values is not None for s in samples):
        batch.update(pixel_values=torch.cat([s.pixel_values for s in samples]),
                     image_grid_thw=torch.cat([s.image_grid_thw for s in samples]))
    if mm is not None:
        batch["mm_token_type_ids"] = mm
    return batch
