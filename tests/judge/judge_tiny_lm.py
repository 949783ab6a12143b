"""A tiny random-initialised causal LM (tests/tiny_lm.py) with a BPE tokenizer and a chat template of its own.

Its output is junk by construction: exactly what the local judge must survive (retry, then INVALID).
"""

from __future__ import annotations

from pathlib import Path

from tiny_lm import save_tiny_causal_lm

_CORPUS = [
    "Speaker 1: we went to the lake and the boat was red.",
    "Speaker 2: and then the kids ran to the beach, what a day!",
    'system user assistant {"winner": "A", "rationale": "tie B"} Dialogue Photos criterion',
]
_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_lm(out_dir: Path, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = _TEMPLATE
    return save_tiny_causal_lm(tokenizer, out_dir, seed, max_positions=8192)
