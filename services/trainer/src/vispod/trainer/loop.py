"""The training loop: our own (not HF Trainer) so every piece of state is ours to checkpoint and resume exactly.

The data order is a pure function of (seed, step): step k of epoch e takes a fixed slice of a permutation seeded by
(seed, e), so a resumed run needs only the step number, the adapter, optimizer and scheduler states and the RNGs
(LoRA dropout and NEFTune draw from torch's) to continue bit-for-bit the run that was interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vispod.common.adapter_store.key_names import for_engine, unloadable
from vispod.trainer import telemetry as tm
from vispod.trainer.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from vispod.trainer.dataset import Pair
from vispod.trainer.encoding import IGNORE_INDEX, Encoded, PairEncoder, Skipped, collate
from vispod.trainer.lora import NEFTune, apply_lora, trainable_parameters
from vispod.trainer.settings import TrainerSettings
from vispod.trainer.text_model import is_text_model, load_text_base

log = logging.getLogger(__name__)

StepCallback = Callable[[dict[str, Any]], None]


class Interrupted(RuntimeError):
    """Training stopped on request (SIGTERM) after writing a checkpoint; rerun with resume to continue."""


@dataclass
class TrainResult:
    adapter_dir: Path
    steps: int
    losses: list[float]
    eval_loss: float | None
    metrics: dict[str, float]
    trainable_params: int
    total_params: int
    history: list[dict[str, Any]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def split_indices(n: int, eval_fraction: float, eval_max: int, seed: int) -> tuple[list[int], list[int]]:
    """A fixed held-out split (same seed, same split), never empty on the training side."""
    if eval_fraction <= 0 or eval_max <= 0 or n < 2:
        return list(range(n)), []
    k = min(max(1, round(n * eval_fraction)), eval_max, n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[k:]), sorted(perm[:k])


class DataPlan:
    """Which pairs each optimizer step trains on: the step-th slice of a per-epoch seeded permutation."""

    def __init__(self, train_idx: Sequence[int], settings: TrainerSettings) -> None:
        self.train_idx = list(train_idx)
        self.batch = settings.effective_batch_size
        self.seed = settings.seed
        self.steps_per_epoch = math.ceil(len(self.train_idx) / self.batch)
        self.total_steps = settings.max_steps or self.steps_per_epoch * settings.epochs
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            gen = torch.Generator().manual_seed(self.seed * 1000 + epoch + 1)
            self._perms = {epoch: torch.randperm(len(self.train_idx), generator=gen).tolist()}
        return self._perms[epoch]

    def at(self, step: int) -> tuple[int, list[int]]:
        epoch, pos = divmod(step, self.steps_per_epoch)
        chunk = self._perm(epoch)[pos * self.batch:(pos + 1) * self.batch]
        return epoch, [self.train_idx[i] for i in chunk]


def linear_schedule(total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


def resolve_device(settings: TrainerSettings) -> tuple[torch.device, bool, bool]:
    cuda = settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available())
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no CUDA device is visible")
    bf16 = settings.bf16 if settings.bf16 is not None else cuda
    checkpointing = settings.gradient_checkpointing if settings.gradient_checkpointing is not None else cuda
    return torch.device("cuda" if cuda else "cpu"), bf16, checkpointing


def load_base(path: Path, device: torch.device, bf16: bool, checkpointing: bool) -> tuple[Any, Any]:
    """A VLM folder (AutoModelForImageTextToText + its processor) or a text-only GGUF model (see text_model)."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    if is_text_model(path):
        model, processor, _ = load_text_base(path, dtype)
    else:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
        processor = AutoProcessor.from_pretrained(path)
    model.to(device)
    model.config.use_cache = False
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, processor


def run_fingerprint(settings: TrainerSettings, dataset_sha256: str, base_revision: str) -> str:
    """What a checkpoint must match to be resumed: same recipe, same data, same base."""
    doc = {"hp": settings.hyperparameters(), "data": dataset_sha256, "base": base_revision}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _chunks(items: list[Encoded], size: int) -> Iterator[list[Encoded]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _to(batch: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if "pixel_values" in out:
        out["pixel_values"] = out["pixel_values"].to(dtype)
    return out


def name_for_engine(weights: Path, engine: str) -> None:
    """Renames the saved tensors the way `engine` loads them; ValueError when one would still be skipped."""
    tensors = load_file(str(weights))
    renamed = {for_engine(k, engine): v for k, v in tensors.items()}
    bad = unloadable(renamed, engine)
    if bad:
        raise ValueError(f"{engine} would not load {len(bad)} LoRA tensor(s), e.g. {bad[0]}")
    if renamed.keys() != tensors.keys():
        save_file(renamed, str(weights))


class LoraTrainer:
    def __init__(self, settings: TrainerSettings, pairs: Sequence[Pair], *, dataset_sha256: str,
                 base_model_id: str = "", base_revision: str = "", progress: tm.Progress | None = None) -> None:
        if settings.base_model is None:
            raise ValueError("base_model is required")
        self.settings = settings
        self.pairs = list(pairs)
        self.dataset_sha256 = dataset_sha256
        self.base_model_id = base_model_id
        self.fingerprint = run_fingerprint(settings, dataset_sha256, base_revision)
        self.progress = progress or tm.Progress()
        self.device, self.bf16, self.checkpointing = resolve_device(settings)
        self.dtype = torch.bfloat16 if self.bf16 else torch.float32
        self.train_idx, self.eval_idx = split_indices(len(self.pairs), settings.eval_fraction,
                                                      settings.eval_max_samples, settings.seed)
        self.plan = DataPlan(self.train_idx, settings)
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        seed_everything(settings.seed)
        base, self.processor = load_base(settings.base_model, self.device, self.bf16, self.checkpointing)
        self.model = apply_lora(base, r=settings.lora_r, alpha=settings.lora_alpha, dropout=settings.lora_dropout,
                                target_modules=settings.lora_target_modules,
                                text_only=is_text_model(settings.base_model))
        self.encoder = PairEncoder(self.processor, max_length=settings.max_length, overflow=settings.overflow,
                                   min_dialogue_tokens=settings.min_dialogue_tokens,
                                   label_end_of_turn=settings.label_end_of_turn)
        params = [p for _, p in trainable_parameters(self.model)]
        self.trainable_params = sum(p.numel() for p in params)
        self.total_params = sum(p.numel() for p in self.model.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, betas=(settings.adam_beta1,
                                           settings.adam_beta2), eps=settings.adam_eps,
                                           weight_decay=settings.weight_decay)
        warmup = math.ceil(self.plan.total_steps * settings.warmup_ratio)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           linear_schedule(self.plan.total_steps, warmup))
        self.neftune = NEFTune(self.model.get_input_embeddings(), settings.neftune_alpha)
        self._encode_lock = threading.Lock()
        self.state: dict[str, Any] = {"step": 0, "losses": [], "evals": [], "samples": 0, "tokens": 0,
                                      "truncated": 0, "skipped": {"too_long": 0, "prompt_too_long": 0},
                                      "train_seconds": 0.0}

    # -- data ---------------------------------------------------------------------------------------------------
    def _encode(self, indices: Sequence[int]) -> list[Encoded | Skipped]:
        with self._encode_lock:  # the tokenizer is not safe to share between threads
            return [self.encoder.encode(self.pairs[i]) for i in indices]

    def _keep(self, results: list[Encoded | Skipped], count: bool) -> list[Encoded]:
        kept = []
        for r in results:
            if isinstance(r, Skipped):
                if count:
                    self.state["skipped"][r.reason] += 1
                    tm.SKIPPED.labels(r.reason).inc()
                log.warning("pair skipped", extra={"line": r.line, "reason": r.reason,
                                                   "max_length": self.settings.max_length})
                continue
            if r.truncated and count:
                self.state["truncated"] += 1
                tm.TRUNCATED.inc()
                log.warning("dialogue tail truncated", extra={"line": r.line, "max_length": self.settings.max_length})
            kept.append(r)
        return kept

    # -- checkpoints --------------------------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.settings.output_dir / "checkpoints"

    def resume_if_possible(self) -> bool:
        found = list_checkpoints(self.checkpoint_dir)
        if not found:
            log.info("no checkpoint to resume from: starting fresh", extra={"dir": str(self.checkpoint_dir)})
            return False
        latest = found[-1]
        saved = json.loads((latest / "state.json").read_text())
        if saved.get("fingerprint") != self.fingerprint:
            raise RuntimeError(f"checkpoint {latest} was made with other settings, data or base model; "
                               "remove it or restore the original settings to resume")
        state = load_checkpoint(latest, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
        state.pop("fingerprint", None)
        self.state = state
        self.progress.emit("resume", step=state["step"], checkpoint=str(latest))
        return True

    def save(self) -> Path:
        path = save_checkpoint(self.checkpoint_dir, self.state["step"], model=self.model, optimizer=self.optimizer,
                               scheduler=self.scheduler, state={**self.state, "fingerprint": self.fingerprint},
                               keep=self.settings.keep_checkpoints)
        tm.CHECKPOINTS.inc()
        self.progress.emit("checkpoint", step=self.state["step"], path=str(path))
        return path

    # -- evaluation ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> float | None:
        if not self.eval_idx:
            return None
        self.model.eval()
        total, items = 0.0, 0
        kept = self._keep(self._encode(self.eval_idx), count=False)
        if not kept:
            log.warning("no held-out pair fits max_length: no evaluation loss")
            return None
        for mb in _chunks(kept, self.settings.micro_batch_size):
            batch = _to(collate(mb, self.encoder.pad_token_id), self.device, self.dtype)
            n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            out = self.model(**batch, num_items_in_batch=1)  # sum of token losses
            total += float(out.loss)
            items += n
        self.model.train()
        loss = total / max(1, items)
        self.state["evals"].append({"step": self.state["step"], "eval_loss": loss})
        tm.EVAL_LOSS.set(loss)
        self.progress.emit("eval", step=self.state["step"], eval_loss=loss, samples=len(kept))
        return loss

    # -- training -----------------------------------------------------------------------------------------------
    def _train_step(self, encoded: list[Encoded | Skipped]) -> dict[str, Any]:
        kept = self._keep(encoded, count=True)
        # Loss = sum of token losses over the whole accumulation window / its number of label tokens, so every
        # dialogue token weighs the same whatever micro-batch it falls in.
        items = sum(int((e.labels[1:] != IGNORE_INDEX).sum()) for e in kept)
        lr = self.scheduler.get_last_lr()[0]
        loss_sum = torch.zeros((), device=self.device)
        tokens = 0
        for mb in _chunks(kept, self.settings.micro_batch_size):
            batch = _to(collate(mb, self.encoder.pad_token_id), self.device, self.dtype)
            tokens += int(batch["attention_mask"].sum())
            out = self.model(**batch, num_items_in_batch=max(1, items))
            out.loss.backward()
            loss_sum += out.loss.detach().float()
        if kept:
            if self.settings.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_([p for _, p in trainable_parameters(self.model)],
                                               self.settings.max_grad_norm)
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": float(loss_sum) if kept else float("nan"), "lr": lr, "samples": len(kept), "tokens": tokens}

    def train(self, *, on_step: StepCallback | None = None, stop: threading.Event | None = None,
              resume: bool = False) -> TrainResult:
        s = self.settings
        if resume:
            self.resume_if_possible()
        start, total = self.state["step"], self.plan.total_steps
        tm.TOTAL_STEPS.set(total)
        self.progress.emit("start", step=start, total_steps=total, train_pairs=len(self.train_idx),
                           eval_pairs=len(self.eval_idx), grad_accum_steps=s.grad_accum_steps,
                           device=str(self.device), bf16=self.bf16, gradient_checkpointing=self.checkpointing,
                           trainable_params=self.trainable_params, total_params=self.total_params)
        self.model.train()
        pool = ThreadPoolExecutor(1, thread_name_prefix="encode") if s.data_workers else None
        pending: Future[list[Encoded | Skipped]] | None = None
        try:
            for step in range(start, total):
                t0 = time.perf_counter()
                epoch, indices = self.plan.at(step)
                encoded = pending.result() if pending is not None else self._encode(indices)
                pending = pool.submit(self._encode, self.plan.at(step + 1)[1]) if pool and step + 1 < total else None
                rec = self._train_step(encoded)
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
                self.state["step"] = step + 1
                self.state["losses"].append(rec["loss"])
                self.state["samples"] += rec["samples"]
                self.state["tokens"] += rec["tokens"]
                self.state["train_seconds"] += dt
                rec.update(step=step + 1, epoch=epoch, seconds=round(dt, 4),
                           samples_per_s=round(rec["samples"] / dt, 4), tokens_per_s=round(rec["tokens"] / dt, 2))
                tm.STEPS.inc()
                tm.LOSS.set(rec["loss"])
                tm.LEARNING_RATE.set(rec["lr"])
                tm.SAMPLES.inc(rec["samples"])
                tm.TOKENS.inc(rec["tokens"])
                tm.SAMPLES_PER_SECOND.set(rec["samples_per_s"])
                tm.STEP_SECONDS.observe(dt)
                tm.LAST_STEP_TIME.set_to_current_time()
                self.progress.emit("step", total_steps=total, **rec)
                done = step + 1 == total
                if s.eval_every_steps and (step + 1) % s.eval_every_steps == 0 and not done:
                    self.evaluate()
                if s.checkpoint_every_steps and (step + 1) % s.checkpoint_every_steps == 0 and not done:
                    self.save()
                if on_step is not None:
                    on_step(rec)
                if stop is not None and stop.is_set() and not done:
                    self.save()
                    raise Interrupted(f"stopped at step {step + 1} of {total}; checkpoint written, resume to continue")
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        eval_loss = self.evaluate()
        if s.checkpoint_every_steps and start < total:
            # A retry after a failed publish resumes here and re-publishes without training again.
            self.save()
        adapter_dir = self.save_adapter(s.output_dir / "adapter", self.base_model_id)
        return TrainResult(adapter_dir=adapter_dir, steps=self.state["step"], losses=list(self.state["losses"]),
                           eval_loss=eval_loss, metrics=self.metrics(eval_loss), trainable_params=self.trainable_params,
                           total_params=self.total_params, history=list(self.state["evals"]))

    def metrics(self, eval_loss: float | None) -> dict[str, float]:
        losses = [x for x in self.state["losses"] if x == x]
        tail = losses[-10:]
        secs = self.state["train_seconds"]
        out = {"steps": float(self.state["step"]), "samples": float(self.state["samples"]),
               "tokens": float(self.state["tokens"]), "train_seconds": round(secs, 3),
               "samples_per_second": self.state["samples"] / secs if secs else 0.0,
               "train_loss_final": losses[-1] if losses else float("nan"),
               "train_loss_last10_mean": sum(tail) / len(tail) if tail else float("nan"),
               "truncated_samples": float(self.state["truncated"]),
               "skipped_too_long": float(self.state["skipped"]["too_long"]),
               "skipped_prompt_too_long": float(self.state["skipped"]["prompt_too_long"]),
               "train_pairs": float(len(self.train_idx)), "eval_pairs": float(len(self.eval_idx))}
        if eval_loss is not None:
            out["eval_loss"] = eval_loss
        return out

    def save_adapter(self, out: Path, base_model_id: str = "") -> Path:
        """adapter_model.safetensors + adapter_config.json only (peft's generated README is dropped)."""
        out.mkdir(parents=True, exist_ok=True)
        cfg = self.model.peft_config["default"]
        original = cfg.base_model_name_or_path
        if base_model_id:  # don't leak the training pod's local paths into the artifact
            cfg.base_model_name_or_path = base_model_id
        try:
            self.model.save_pretrained(out, save_embedding_layers=False)
        finally:
            cfg.base_model_name_or_path = original
        (out / "README.md").unlink(missing_ok=True)
        name_for_engine(out / "adapter_model.safetensors", self.settings.serving_engine)
        return out
