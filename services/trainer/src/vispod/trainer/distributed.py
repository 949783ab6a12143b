"""The trainer across processes: torchrun's contract in, PyTorch FSDP2 (`fully_shard`) out.

torchrun (or `vispod.trainer.launch`, its wrapper) starts one process per device and sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT; this module reads them (in one place) and joins the process group: NCCL on
CUDA, gloo on CPU. Without them the trainer is one plain process and none of this runs.

Sharding: every decoder layer of the language model is its own FSDP unit and the root holds the rest (embeddings,
vision tower, merger, head). Parameters, gradients and optimizer state are sharded across ranks (ZeRO-3's layout);
the frozen base weights are gathered a layer at a time for compute and never get gradients. The vision tower stays
in the root unit on purpose: a rank whose micro-batch has no image skips it, and a sharded tower would then leave
the ranks' collectives out of step.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from vispod.trainer.lora import layer_prefix_regex

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Dist:
    """Where this process stands in the job. Not launched by torchrun: one plain process, no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False  # torchrun's variables were set

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        """A process group is up: collectives reach the other ranks."""
        return self.launched and dist.is_initialized()

    @classmethod
    def from_env(cls) -> Dist:
        """torchrun's variables (all three or none: a partial set is a launch mistake worth stopping on)."""
        present = [v for v in _TORCHRUN_VARS if v in os.environ]
        if not present:
            return cls()
        if len(present) != len(_TORCHRUN_VARS):
            raise ValueError(f"incomplete torchrun environment: {present} set, {_TORCHRUN_VARS} needed")
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]), True)

    # -- process group ------------------------------------------------------------------------------------------
    def init(self, device: torch.device, timeout_s: float) -> None:
        """Joins the process group (once): NCCL bound to this rank's GPU, or gloo on CPU."""
        if not self.launched or dist.is_initialized():
            return
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=_dt.timedelta(seconds=timeout_s),
                                device_id=device if cuda else None)

    def close(self) -> None:
        if self.active:
            dist.destroy_process_group()

    # -- collectives (the value itself for one process) ---------------------------------------------------------
    def sum(self, values: Sequence[float], device: torch.device) -> list[float]:
        """Element-wise sum over ranks, in float64 so counts stay exact."""
        t = torch.tensor(list(values), dtype=torch.float64, device=device)
        if self.active:
            dist.all_reduce(t)
        return t.tolist()

    def slot(self, value: float) -> list[float]:
        """A world-sized vector holding `value` at this rank's place: summed over ranks it gathers every rank's."""
        out = [0.0] * self.world_size
        out[self.rank] = value
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def from_main(self, value: Any) -> Any:
        """rank 0's value on every rank (a picklable object)."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def local_device(d: Dist, cuda: bool) -> torch.device:
    return torch.device("cuda", d.local_rank) if cuda else torch.device("cpu")


def decoder_layers(model: nn.Module, text_only: bool) -> list[nn.Module]:
    """The language model's decoder layers, found by the same names LoRA targets (vision blocks never match)."""
    pattern = re.compile(layer_prefix_regex(text_only))
    return [m for name, m in model.named_modules() if pattern.fullmatch(name)]


def shard(model: nn.Module, d: Dist, *, text_only: bool, param_dtype: torch.dtype | None) -> nn.Module:
    """FSDP2 over the ranks: one unit per decoder layer, the root for the rest; with param_dtype (bf16) compute
    runs in it while gradients are reduced and the optimizer steps in fp32. FSDP averages gradients over ranks:
    the loop scales each rank's loss by the world size to get their sum (see LoraTrainer)."""
    from torch.distributed.device_mesh import init_device_mesh  # heavy: only under torchrun
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh("cuda" if dist.get_backend() == "nccl" else "cpu", (d.world_size,))
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    layers = decoder_layers(model, text_only)
    if not layers:
        raise RuntimeError("no decoder layers found to shard: the model's layer names are not the expected ones")
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model
