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
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from vispod.common.adapter_store.key_names import for_engine, unloadable
from vispod.trainer import telemetry as tm
from vispod.trainer.checkpoint import list_checkpoints, load_checkpoint, read_state, save_checkpoint
from vispod.trainer.dataset import Pair
from vispod.trainer.distributed import Dist, local_device, shard
from vispod.trainer.encoding import IGNORE_INDEX, Encoded, PairEncoder, Skipped, collate
from vispod.trainer.lora import NEFTune, apply_lora, four_bit_config, trainable_parameters
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


def resolve_device(settings: TrainerSettings, d: Dist) -> tuple[torch.device, bool, bool]:
    """(this rank's device, bf16, gradient checkpointing): CUDA when asked or present; its local GPU under torchrun."""
    cuda = settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available())
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no CUDA device is visible")
    bf16 = settings.bf16 if settings.bf16 is not None else cuda
    checkpointing = settings.gradient_checkpointing if settings.gradient_checkpointing is not None else cuda
    return local_device(d, cuda), bf16, checkpointing


def load_base(path: Path, device: torch.device, bf16: bool, checkpointing: bool,
              quantization: str = "none") -> tuple[Any, Any]:
    """A VLM folder (AutoModelForImageTextToText + its processor) or a text-only GGUF model (see text_model).
    With quantization=4bit the weights are quantised on loading, straight onto `device` (QLoRA)."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    four_bit = quantization == "4bit"
    if four_bit and device.type != "cuda":
        raise ValueError("quantization=4bit (QLoRA) needs a CUDA GPU; this run has none (device=cpu)")
    if is_text_model(path):
        if four_bit:
            raise ValueError("quantization=4bit needs a transformers model folder, not a GGUF file")
        model, processor, _ = load_text_base(path, dtype)
    else:
        from transformers import AutoModelForImageTextToText, AutoProcessor  # heavy (seconds): only when a model loads

        extra: dict[str, Any] = {}
        if four_bit:
            extra = {"quantization_config": four_bit_config(dtype), "device_map": {"": device.index or 0}}
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, **extra)
        processor = AutoProcessor.from_pretrained(path)
    model.config.use_cache = False
    if four_bit:
        from peft import prepare_model_for_kbit_training  # heavy: only for QLoRA

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
        return model, processor
    model.to(device)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, processor


def micro_batch_seed(seed: int, step: int, index: int) -> int:
    """The RNG seed of one micro-batch (LoRA dropout, NEFTune): a function of where it sits in the global batch,
    never of which rank runs it, so any number of ranks (and a resumed run) draws the very same noise."""
    return (((seed % 2**31) * 1_000_003 + step) * 65_537 + index + 1) % 2**63


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
    """LoRA training on one process or many (torchrun + FSDP2): the same data, seeds and loss on any world size.

    Each optimizer step takes the step's global batch (DataPlan), cuts it into micro-batches and hands micro-batch k
    to rank k mod world_size. Every rank's loss is its share of the global mean (its token losses / the label tokens
    of the whole step, summed across ranks first) and gradients are summed across ranks, so 1 and N processes take
    the same optimizer step. A rank with fewer micro-batches than the busiest runs empty ones (no labels, zero loss)
    so every rank makes the same FSDP collectives.
    """

    def __init__(self, settings: TrainerSettings, pairs: Sequence[Pair], *, dataset_sha256: str,
                 base_model_id: str = "", base_revision: str = "", progress: tm.Progress | None = None,
                 dist: Dist | None = None) -> None:
        if settings.base_model is None:
            raise ValueError("base_model is required")
        self.settings = settings
        self.dist = dist or Dist()
        if settings.fsdp and not self.dist.launched:
            raise ValueError("fsdp=true needs the process group torchrun sets up: launch with torchrun")
        self.sharded = self.dist.launched and (self.dist.world_size > 1 or settings.fsdp)
        if settings.quantization == "4bit" and self.sharded:
            raise ValueError("quantization=4bit (QLoRA) is the one-GPU path: under torchrun FSDP shards the 16-bit "
                             "base instead (quantization=none)")
        self.pairs = list(pairs)
        self.dataset_sha256 = dataset_sha256
        self.base_model_id = base_model_id
        self.fingerprint = run_fingerprint(settings, dataset_sha256, base_revision)
        self.progress = (progress or tm.Progress()) if self.dist.is_main else tm.NullProgress()
        self.device, self.bf16, self.checkpointing = resolve_device(settings, self.dist)
        if settings.quantization == "4bit" and self.device.type != "cuda":
            raise ValueError("quantization=4bit (QLoRA) needs a CUDA GPU; none is visible")
        self.dtype = torch.bfloat16 if self.bf16 else torch.float32
        self.dist.init(self.device, settings.dist_timeout_s)
        self.train_idx, self.eval_idx = split_indices(len(self.pairs), settings.eval_fraction,
                                                      settings.eval_max_samples, settings.seed)
        self.plan = DataPlan(self.train_idx, settings)
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        seed_everything(settings.seed)  # LoRA's initial weights: the same on every rank
        text_only = is_text_model(settings.base_model)
        # Sharded: load on the CPU and let fully_shard move each rank's shards to its device, a layer at a time.
        load_on = torch.device("cpu") if self.sharded else self.device
        base, self.processor = load_base(settings.base_model, load_on, self.bf16, self.checkpointing,
                                         settings.quantization)
        self.model = apply_lora(base, r=settings.lora_r, alpha=settings.lora_alpha, dropout=settings.lora_dropout,
                                target_modules=settings.lora_target_modules, text_only=text_only)
        self.total_params = sum(p.numel() for p in self.model.parameters())
        self.trainable_params = sum(p.numel() for _, p in trainable_parameters(self.model))
        if self.sharded:
            shard(self.model, self.dist, text_only=text_only, param_dtype=self.dtype if self.bf16 else None)
        self.encoder = PairEncoder(self.processor, max_length=settings.max_length, overflow=settings.overflow,
                                   min_dialogue_tokens=settings.min_dialogue_tokens,
                                   label_end_of_turn=settings.label_end_of_turn)
        params = [p for _, p in trainable_parameters(self.model)]
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
        tm.WORLD_SIZE.set(self.dist.world_size)

    # -- data ---------------------------------------------------------------------------------------------------
    def _share(self, indices: Sequence[int]) -> list[tuple[int, list[int]]]:
        """(global micro-batch index, pair indices) of the micro-batches this rank runs."""
        m, w = self.settings.micro_batch_size, self.dist.world_size
        chunks = [list(indices[i:i + m]) for i in range(0, len(indices), m)]
        return [(k, c) for k, c in enumerate(chunks) if k % w == self.dist.rank]

    def _encode(self, share: list[tuple[int, list[int]]]) -> list[tuple[int, list[Encoded | Skipped]]]:
        with self._encode_lock:  # the tokenizer is not safe to share between threads
            return [(k, [self.encoder.encode(self.pairs[i]) for i in idx]) for k, idx in share]

    def _keep(self, results: list[Encoded | Skipped], counts: dict[str, int] | None) -> list[Encoded]:
        kept = []
        for r in results:
            if isinstance(r, Skipped):
                if counts is not None:
                    counts[r.reason] += 1
                log.warning("pair skipped", extra={"line": r.line, "reason": r.reason,
                                                   "max_length": self.settings.max_length})
                continue
            if r.truncated and counts is not None:
                counts["truncated"] += 1
                log.warning("dialogue tail truncated", extra={"line": r.line, "max_length": self.settings.max_length})
            kept.append(r)
        return kept

    def _empty_batch(self) -> dict[str, torch.Tensor]:
        """A micro-batch with no label: zero loss and zero gradients, but the same collectives as a real one."""
        ids = torch.full((1, 2), self.encoder.pad_token_id, dtype=torch.long, device=self.device)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                "labels": torch.full_like(ids, IGNORE_INDEX)}

    def _rounds(self, local: list[float], n_micro: int) -> tuple[list[float], int]:
        """Sums `local` over ranks and returns it with the most micro-batches any rank has (what each must run)."""
        out = self.dist.sum(list(local) + self.dist.slot(n_micro), self.device)
        return out[:len(local)], int(max(out[len(local):]))

    # -- checkpoints --------------------------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.settings.output_dir / "checkpoints"

    def resume_if_possible(self) -> bool:
        found = list_checkpoints(self.checkpoint_dir) if self.dist.is_main else []
        latest = self.dist.from_main(found[-1] if found else None)  # one choice for every rank
        if latest is None:
            log.info("no checkpoint to resume from: starting fresh", extra={"dir": str(self.checkpoint_dir)})
            return False
        if read_state(latest).get("fingerprint") != self.fingerprint:
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
                               keep=self.settings.keep_checkpoints, d=self.dist)
        tm.CHECKPOINTS.inc()
        self.progress.emit("checkpoint", step=self.state["step"], path=str(path))
        return path

    # -- evaluation ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> float | None:
        if not self.eval_idx:
            return None
        self.model.eval()
        mine = [kept for _, results in self._encode(self._share(self.eval_idx))
                if (kept := self._keep(results, None))]
        (n_kept,), rounds = self._rounds([sum(len(mb) for mb in mine)], len(mine))
        total, items = 0.0, 0
        for i in range(rounds):
            batch = _to(collate(mine[i], self.encoder.pad_token_id), self.device, self.dtype) if i < len(mine) \
                else self._empty_batch()
            out = self.model(**batch, num_items_in_batch=1)  # sum of token losses
            if i < len(mine):
                total += float(out.loss)
                items += int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        self.model.train()
        total, items = self.dist.sum([total, items], self.device)
        if not n_kept:
            log.warning("no held-out pair fits max_length: no evaluation loss")
            return None
        loss = total / max(1, items)
        self.state["evals"].append({"step": self.state["step"], "eval_loss": loss})
        tm.EVAL_LOSS.set(loss)
        self.progress.emit("eval", step=self.state["step"], eval_loss=loss, samples=int(n_kept))
        return loss

    # -- training -----------------------------------------------------------------------------------------------
    def _train_step(self, step: int, encoded: list[tuple[int, list[Encoded | Skipped]]],
                    t0: float) -> dict[str, Any]:
        counts = {"truncated": 0, "too_long": 0, "prompt_too_long": 0}
        mine = [(k, kept) for k, results in encoded if (kept := self._keep(results, counts))]
        # Loss = sum of token losses over the whole step (every micro-batch of every rank) / its number of label
        # tokens, so every dialogue token weighs the same whatever micro-batch or rank it falls in.
        local_items = sum(int((e.labels[1:] != IGNORE_INDEX).sum()) for _, mb in mine for e in mb)
        local_samples = sum(len(mb) for _, mb in mine)
        (items, samples, truncated, too_long, prompt_too_long), rounds = self._rounds(
            [local_items, local_samples, counts["truncated"], counts["too_long"], counts["prompt_too_long"]],
            len(mine))
        lr = self.scheduler.get_last_lr()[0]
        loss_sum = torch.zeros((), device=self.device)
        tokens = 0
        for i in range(rounds):
            if i < len(mine):
                k, mb = mine[i]
                batch = _to(collate(mb, self.encoder.pad_token_id), self.device, self.dtype)
                tokens += int(batch["attention_mask"].sum())
            else:
                k, batch = -1, self._empty_batch()
            torch.manual_seed(micro_batch_seed(self.settings.seed, step, k))
            out = self.model(**batch, num_items_in_batch=max(1, int(items)))
            # Each rank's loss is its share of the global mean, so the step's gradient is the sum over ranks; FSDP's
            # reduce-scatter averages (a custom divide factor needs PREMUL_SUM, which gloo lacks): scale it back.
            (out.loss * self.dist.world_size if self.sharded else out.loss).backward()
            if k >= 0:
                loss_sum += out.loss.detach().float()
        if samples:
            if self.settings.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_([p for _, p in trainable_parameters(self.model)],
                                               self.settings.max_grad_norm)
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        mine_s = time.perf_counter() - t0
        # One collective for the step's totals and each rank's throughput.
        totals = self.dist.sum([float(loss_sum), tokens, *self.dist.slot(tokens / mine_s)], self.device)
        for reason, n in (("too_long", too_long), ("prompt_too_long", prompt_too_long)):
            self.state["skipped"][reason] += int(n)
            tm.SKIPPED.labels(reason).inc(n)
        self.state["truncated"] += int(truncated)
        tm.TRUNCATED.inc(truncated)
        return {"loss": totals[0] if samples else float("nan"), "lr": lr, "samples": int(samples),
                "tokens": int(totals[1]), "rank_tokens_per_s": [round(x, 2) for x in totals[2:]]}

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
                           trainable_params=self.trainable_params, total_params=self.total_params,
                           world_size=self.dist.world_size, fsdp=self.sharded, quantization=s.quantization)
        self.model.train()
        pool = ThreadPoolExecutor(1, thread_name_prefix="encode") if s.data_workers else None
        pending: Future[list[tuple[int, list[Encoded | Skipped]]]] | None = None
        try:
            for step in range(start, total):
                t0 = time.perf_counter()
                epoch, indices = self.plan.at(step)
                encoded = pending.result() if pending is not None else self._encode(self._share(indices))
                pending = (pool.submit(self._encode, self._share(self.plan.at(step + 1)[1]))
                           if pool and step + 1 < total else None)
                rec = self._train_step(step, encoded, t0)
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
                for rank, rate in enumerate(rec["rank_tokens_per_s"]):
                    tm.RANK_TOKENS_PER_SECOND.labels(str(rank)).set(rate)
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
                # SIGTERM reaches the ranks at different moments: they agree at the step boundary, so all of them
                # checkpoint and stop at the same step.
                stopping = self.dist.sum([float(stop is not None and stop.is_set())], self.device)[0] > 0
                if stopping and not done:
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
               "train_pairs": float(len(self.train_idx)), "eval_pairs": float(len(self.eval_idx)),
               "world_size": float(self.dist.world_size)}
        if eval_loss is not None:
            out["eval_loss"] = eval_loss
        return out

    def save_adapter(self, out: Path, base_model_id: str = "") -> Path:
        """adapter_model.safetensors + adapter_config.json only (peft's generated README is dropped). Every rank
        calls it (the LoRA weights are gathered from their shards); rank 0 writes."""
        full = get_model_state_dict(self.model, options=StateDictOptions(
            full_state_dict=True, cpu_offload=self.dist.active, ignore_frozen_params=True))
        if self.dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            cfg = self.model.peft_config["default"]
            original = cfg.base_model_name_or_path
            if base_model_id:  # don't leak the training pod's local paths into the artifact
                cfg.base_model_name_or_path = base_model_id
            try:
                self.model.save_pretrained(out, state_dict=full, save_embedding_layers=False)
            finally:
                cfg.base_model_name_or_path = original
            (out / "README.md").unlink(missing_ok=True)
            name_for_engine(out / "adapter_model.safetensors", self.settings.serving_engine)
        self.dist.barrier()
        return out
