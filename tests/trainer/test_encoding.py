"""Labels: the assistant's dialogue tokens (and its end-of-turn token) only, checked token by token."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vispod.devkit.testing.sample_pairs import write_sample_pairs
from vispod.trainer.dataset import DatasetError, load_pairs
from vispod.trainer.encoding import IGNORE_INDEX, Encoded, PairEncoder, Skipped, collate


@pytest.fixture(scope="module")
def processor(tiny_model: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model)


def test_labels_cover_exactly_the_dialogue(processor, pairs_dir: Path) -> None:
    tok = processor.tokenizer
    pair = load_pairs(pairs_dir)[0]
    enc = PairEncoder(processor, max_length=8192).encode(pair)
    assert isinstance(enc, Encoded) and not enc.truncated
    ids, labels = enc.input_ids.tolist(), enc.labels.tolist()
    assert len(ids) == len(labels)
    tokens = tok.convert_ids_to_tokens(ids)
    # The learned span starts right after the assistant header and runs to the end.
    header = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    start = next(i + len(header) for i in range(len(ids)) if ids[i:i + len(header)] == header)
    dialogue = tok(pair.dialogue, add_special_tokens=False)["input_ids"]
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert ids[start:] == [*dialogue, im_end]
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    n_image_tokens = int(enc.image_grid_thw.prod(-1).sum()) // 4  # merge 2x2
    assert ids.count(image_pad) == n_image_tokens == 5 * 4
    for i, (token_id, label) in enumerate(zip(ids, labels, strict=True)):
        if i < start:  # system/user prompt, instructions, vision markers, image pads, assistant header
            assert label == IGNORE_INDEX, f"prompt token {i} {tokens[i]!r} is not masked"
        else:
            assert label == token_id, f"dialogue token {i} {tokens[i]!r} has label {label}"
    assert tok.decode([x for x in labels if x != IGNORE_INDEX]) == pair.dialogue + "<|im_end|>"
    # Image tokens come in the pair's order: 5 vision blocks, then the instructions.
    text = tok.decode(ids[:start])
    assert text.count("<|vision_start|>") == 5 and text.index("<|vision_end|>") < text.index("Write a Q&A")


def test_padding_is_masked_and_unattended(processor, tmp_path: Path) -> None:
    root = write_sample_pairs(tmp_path / "p", n=2)
    root_pairs = load_pairs(root)
    encoder = PairEncoder(processor, max_length=8192)
    short, long_ = encoder.encode(root_pairs[0]), encoder.encode(root_pairs[1])
    batch = collate([short, long_], encoder.pad_token_id)
    n = max(len(short.input_ids), len(long_.input_ids))
    assert batch["input_ids"].shape == (2, n)
    for row, sample in enumerate([short, long_]):
        k = len(sample.input_ids)
        assert torch.equal(batch["labels"][row, :k], sample.labels)
        assert (batch["labels"][row, k:] == IGNORE_INDEX).all() and (batch["attention_mask"][row, k:] == 0).all()
        assert (batch["input_ids"][row, k:] == encoder.pad_token_id).all()
    assert batch["pixel_values"].shape[0] == short.pixel_values.shape[0] + long_.pixel_values.shape[0]
    assert batch["image_grid_thw"].shape == (10, 3)


def test_overflow_policies(processor, tmp_path: Path) -> None:
    pair = load_pairs(write_sample_pairs(tmp_path / "p", n=1, dialogue_repeat=8))[0]
    full = PairEncoder(processor, max_length=8192).encode(pair)
    prompt_len = int((full.labels == IGNORE_INDEX).sum())
    limit = prompt_len + 40
    cut = PairEncoder(processor, max_length=limit, overflow="truncate").encode(pair)
    assert isinstance(cut, Encoded) and cut.truncated and len(cut.input_ids) == limit
    # The head of the dialogue is kept, and no end-of-turn token is learned for a cut dialogue.
    assert torch.equal(cut.input_ids, full.input_ids[:limit])
    assert processor.tokenizer.convert_tokens_to_ids("<|im_end|>") not in cut.labels.tolist()
    skipped = PairEncoder(processor, max_length=limit, overflow="skip").encode(pair)
    assert skipped == Skipped(line=1, reason="too_long")
    with pytest.raises(DatasetError, match=r"pairs.jsonl:1: \d+ tokens exceed max_length"):
        PairEncoder(processor, max_length=limit, overflow="error").encode(pair)
    # A prompt that alone (nearly) fills max_length cannot be cut: always skipped and counted, never silently.
    tiny = PairEncoder(processor, max_length=prompt_len + 4, overflow="truncate").encode(pair)
    assert tiny == Skipped(line=1, reason="prompt_too_long")
