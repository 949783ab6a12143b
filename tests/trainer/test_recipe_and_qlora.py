"""The paper's recipe as a profile, and QLoRA (4-bit) refused where it cannot run: on a CPU, and under FSDP."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_settings
from pydantic import ValidationError

from vispod.devkit.testing.sample_pairs import write_sample_pairs
from vispod.trainer.dataset import load_pairs
from vispod.trainer.distributed import Dist
from vispod.trainer.loop import LoraTrainer
from vispod.trainer.settings import PAPER_RECIPE, TrainerSettings


def test_paper_profile_holds_a_run_to_the_recipe() -> None:
    paper = TrainerSettings(profile="paper")
    assert {k: getattr(paper, k) for k in PAPER_RECIPE} == PAPER_RECIPE
    assert paper.hyperparameters()["recipe"] == "paper"
    with pytest.raises(ValidationError, match=r"profile=paper fixes \['learning_rate'\] to \[4e-06\]; got \[0.001\]"):
        TrainerSettings(profile="paper", learning_rate=1e-3)
    assert TrainerSettings(learning_rate=1e-3).hyperparameters()["recipe"] == "custom"


def test_qlora_is_refused_on_cpu_with_the_reason() -> None:
    with pytest.raises(ValidationError, match=r"quantization=4bit \(QLoRA\) needs a CUDA GPU"):
        TrainerSettings(quantization="4bit", device="cpu")


def test_qlora_on_a_machine_without_gpu_stops_before_loading(tiny_model: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    settings = tiny_settings(tiny_model, write_sample_pairs(tmp_path / "p", n=2), tmp_path / "o", device="auto",
                             quantization="4bit")
    with pytest.raises(ValueError, match=r"needs a CUDA GPU; none is visible"):
        LoraTrainer(settings, load_pairs(settings.pairs_dir), dataset_sha256="x")


def test_qlora_is_not_combined_with_fsdp(tiny_model: Path, tmp_path: Path) -> None:
    settings = tiny_settings(tiny_model, write_sample_pairs(tmp_path / "p", n=2), tmp_path / "o", device="auto",
                             quantization="4bit")
    with pytest.raises(ValueError, match=r"QLoRA\) is the one-GPU path"):
        LoraTrainer(settings, load_pairs(settings.pairs_dir), dataset_sha256="x",
                    dist=Dist(rank=0, world_size=2, local_rank=0, launched=True))
