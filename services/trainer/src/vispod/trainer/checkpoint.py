"""Checkpoints that a resumed run continues from exactly: LoRA weights, optimizer, scheduler and data position.

torch.distributed.checkpoint (DCP) writes the adapter and optimizer state: under FSDP each rank writes its own shards
(no rank ever holds the whole state) and a later run may load them on another number of ranks (DCP reshards). One
process writes them the same way, so there is one format. Only trainable (LoRA) weights are saved: the base is
frozen and read from the base model. No RNG state is needed: the loop reseeds every micro-batch from its position.

Each checkpoint is written into a temporary folder that rank 0 renames into place only when every rank has
finished, so a crash (or a pre-empted pod) never leaves a half-written checkpoint that a resume would pick.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from vispod.trainer.distributed import Dist

STATE_FILE = "state.json"
SCHEDULER_FILE = "scheduler.pt"
SHARDS_DIR = "shards"
_OPTIONS = StateDictOptions(ignore_frozen_params=True)


def _fsync_tree(path: Path) -> None:
    for f in path.rglob("*"):
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(root: Path, step: int, *, model: Any, optimizer: torch.optim.Optimizer, scheduler: Any,
                    state: dict[str, Any], keep: int, d: Dist | None = None) -> Path:
    """Every rank calls this (DCP is collective); rank 0 writes the small files and renames. `root` must be one
    folder that all ranks see (a shared volume across nodes)."""
    d = d or Dist()
    final = root / f"step-{step:08d}"
    tmp = root / f".step-{step:08d}.tmp"  # the same name on every rank: they write into one folder
    if d.is_main:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    d.barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer, options=_OPTIONS)
    dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(tmp / SHARDS_DIR))
    if d.is_main:
        torch.save(scheduler.state_dict(), tmp / SCHEDULER_FILE)
        (tmp / STATE_FILE).write_text(json.dumps({**state, "world_size": d.world_size}, indent=1))
        _fsync_tree(tmp)
        if final.exists():  # the same step written before a crash: replace it whole
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    d.barrier()
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders never match)."""
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if p.is_dir() and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def read_state(path: Path) -> dict[str, Any]:
    return json.loads((path / STATE_FILE).read_text())


def load_checkpoint(path: Path, *, model: Any, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """Restores LoRA weights, optimizer and scheduler (each rank its own shards); returns the saved loop state."""
    model_sd, optim_sd = get_state_dict(model, optimizer, options=_OPTIONS)
    target = {"model": model_sd, "optimizer": optim_sd}
    try:
        dcp.load(target, checkpoint_id=str(path / SHARDS_DIR))
    except Exception as exc:  # DCP names the missing or misshapen keys
        raise RuntimeError(f"checkpoint {path} does not fit this model: {exc}") from exc
    # Not strict: the checkpoint holds no frozen weight by design; a missing LoRA weight would be an error.
    result = set_state_dict(model, optimizer, model_state_dict=target["model"], optim_state_dict=target["optimizer"],
                            options=StateDictOptions(ignore_frozen_params=True, strict=False))
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    if missing or getattr(result, "unexpected_keys", None):
        raise RuntimeError(f"checkpoint {path} does not fit this model: missing {missing[:5]}, "
                           f"unexpected {list(result.unexpected_keys)[:5]}")
    scheduler.load_state_dict(torch.load(path / SCHEDULER_FILE, map_location="cpu", weights_only=True))
    state = read_state(path)
    state.pop("world_size", None)
    return state
