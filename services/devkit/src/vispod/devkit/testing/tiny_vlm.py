"""A tiny random-initialised Qwen3-VL (model, tokenizer, processor) built offline in about a second.

For tests and benchmarks only: it exercises the real VLM code path (processor, image tokens,
generation, peft) with weights that mean nothing. Needs transformers and tokenizers, imported lazily
so the shared runtime does not depend on them. The folder it writes carries
`vispod_random_weights.json`, which every consumer reports as "random weights".
"""

from __future__ import annotations

from pathlib import Path

from vispod.common.random_weights import write_marker

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]

_CORPUS = [
    "Speaker 1: Welcome back to the show, today we talk about a trip to the beach.",
    "Speaker 2: Oh I love that, the waves, the sand, the sunset over the water.",
    "Speaker 3: And the family picnic, the kids playing with a dog in the park.",
    "Speaker 4: What a day! Did you see the cake at the birthday party?",
    "user assistant system You are a podcast writer. Write a dialogue about the photos in order.",
    "city street night lights concert music friends wedding dinner mountain hike snow car road",
]

_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _train_tokenizer(vocab_size: int):  # -> PreTrainedTokenizerFast
    # heavy: transformers, wanted only by the tests that build the tiny model
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )


def build_tiny_qwen3_vl(out_dir: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """Writes a tiny Qwen3-VL model + processor to out_dir (loadable with AutoModelForImageTextToText /
    AutoProcessor.from_pretrained(out_dir)) and returns out_dir."""
    # heavy: torch and transformers, wanted only by the tests that build the tiny model
    import torch
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
    )
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(vocab_size=600)
    tokenizer.chat_template = _CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": hidden * 2,
            "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
            "max_position_embeddings": 4096, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                                                  "mrope_section": [2, 1, 1]},
            "pad_token_id": ids["<|endoftext|>"], "tie_word_embeddings": True,
        },
        vision_config={
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 4, "patch_size": 16,
            "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": hidden,
            "num_position_embeddings": 64, "deepstack_visual_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(out_dir)
    # Small images keep the token count low: 32x32 patches of 16 px merged 2x2 -> a few tokens per image.
    image_processor = Qwen2VLImageProcessor(
        patch_size=16, merge_size=2, temporal_patch_size=2,
        size={"shortest_edge": 32 * 32, "longest_edge": 64 * 64},
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    video_processor = Qwen3VLVideoProcessor(patch_size=16, merge_size=2, temporal_patch_size=2)
    processor = Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=video_processor, chat_template=_CHAT_TEMPLATE)
    processor.save_pretrained(out_dir)
    write_marker(out_dir, seed=seed, architecture="Qwen3VLForConditionalGeneration")
    return out_dir
