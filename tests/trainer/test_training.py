"""The loop on a tiny random Qwen3-VL on CPU: it learns, resumes exactly, and trains only the language model's LoRA."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from conftest import tiny_settings
from safetensors.torch import load_file

from vispod.adaptersync.sync import check_names
from vispod.common.adapter_store import StoreRejected
from vispod.common.adapter_store.key_names import for_engine, tensor_names, unloadable
from vispod.devkit.testing.sample_pairs import write_sample_pairs
from vispod.trainer.checkpoint import list_checkpoints
from vispod.trainer.dataset import dataset_hash, load_pairs
from vispod.trainer.loop import Interrupted, LoraTrainer
from vispod.trainer.lora import NEFTune
from vispod.trainer.telemetry import Progress


class Capture(Progress):
    def __init__(self) -> None:
        self.events: list[dict] = []

    def emit(self, event: str, **fields) -> None:
        self.events.append({"event": event, **fields})
        json.dumps(self.events[-1])  # every progress line must be JSON


def _trainer(settings, progress: Progress | None = None) -> LoraTrainer:
    pairs = load_pairs(settings.pairs_dir)
    return LoraTrainer(settings, pairs, dataset_sha256=dataset_hash(settings.pairs_dir, pairs), base_model_id="tiny",
                       progress=progress or Capture())


def test_loss_falls_overfitting_two_pairs(tiny_model_wide: Path, tmp_path: Path) -> None:
    pairs = write_sample_pairs(tmp_path / "pairs", n=2)
    # No NEFTune here: on a 128-wide random model its noise (±0.04 at alpha 5) outweighs the embeddings (std 0.02),
    # so how far the loss falls in 30 steps depended on the draws (0.34 to 0.50 nats over seeds); without it the
    # drop is 0.6 to 0.85 nats on every seed tried.
    settings = tiny_settings(tiny_model_wide, pairs, tmp_path / "out", max_steps=30, learning_rate=2e-2,
                             warmup_ratio=0, neftune_alpha=0)
    progress = Capture()
    result = _trainer(settings, progress).train()
    losses = result.losses
    assert len(losses) == 30
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first - 0.4, losses  # ~5.8-6.0 -> ~5.2 nats in 30 steps
    assert min(losses[-5:]) < min(losses[:5])
    steps = [e for e in progress.events if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 31))
    assert all({"loss", "lr", "samples_per_s", "tokens_per_s"} <= e.keys() for e in steps)
    assert steps[0]["samples"] == 2
    assert {p.name for p in result.adapter_dir.iterdir()} == {"adapter_model.safetensors", "adapter_config.json"}
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == 16 and config["lora_alpha"] == 32 and config["base_model_name_or_path"] == "tiny"


def test_only_language_model_lora_trains(tiny_model: Path, tmp_path: Path) -> None:
    trainer = _trainer(tiny_settings(tiny_model, write_sample_pairs(tmp_path / "p", n=2), tmp_path / "out"))
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    lora_modules = {n.split(".lora_")[0] for n in trainable}
    assert all(".language_model.layers." in n and ".lora_" in n for n in trainable)
    kinds = {m.rsplit(".", 1)[1] for m in lora_modules}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert len(lora_modules) == 7 * 2  # 2 layers
    assert not any(p.requires_grad for n, p in trainer.model.named_parameters() if ".visual." in n)
    cfg = trainer.model.peft_config["default"]
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout) == (16, 32, 0.05)


def test_paper_defaults() -> None:
    from vispod.trainer.settings import TrainerSettings

    s = TrainerSettings()
    assert (s.lora_r, s.lora_alpha, s.lora_dropout, s.learning_rate) == (16, 32, 0.05, 4e-6)
    assert (s.effective_batch_size, s.epochs, s.neftune_alpha, s.max_length) == (32, 1, 5.0, 8192)
    assert s.grad_accum_steps == 32


def test_neftune_noise_only_in_training() -> None:
    emb = torch.nn.Embedding(10, 8)
    hook = NEFTune(emb, alpha=5.0)
    ids = torch.arange(6).unsqueeze(0)
    clean = torch.nn.functional.embedding(ids, emb.weight)
    emb.train()
    noisy = emb(ids)
    bound = 5.0 / (6 * 8) ** 0.5
    assert not torch.equal(noisy, clean) and (noisy - clean).abs().max() <= bound + 1e-6
    emb.eval()
    assert torch.equal(emb(ids), clean)
    hook.remove()


def _adapter(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "adapter_model.safetensors"))


@pytest.mark.parametrize("interrupt", ["crash", "sigterm"])
def test_resume_reproduces_the_uninterrupted_run(tiny_model: Path, tmp_path: Path, interrupt: str) -> None:
    # 4 pairs, 1 held out, batch 2: 2 steps per epoch (the second a partial batch), 6 steps over 3 epochs,
    # LoRA dropout and NEFTune on, so data order and every RNG must be restored for the sequence to match.
    pairs = write_sample_pairs(tmp_path / "pairs", n=4)
    common = dict(max_steps=6, eval_fraction=0.25, checkpoint_every_steps=2, neftune_alpha=5.0, lora_dropout=0.05)
    full = _trainer(tiny_settings(tiny_model, pairs, tmp_path / "a", **common)).train()

    settings = tiny_settings(tiny_model, pairs, tmp_path / "b", **common)
    if interrupt == "crash":  # dies after step 5, past the step-4 checkpoint
        def crash(rec: dict) -> None:
            if rec["step"] == 5:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            _trainer(settings).train(on_step=crash)
        resumed_from = 4
    else:  # SIGTERM: the loop checkpoints at the step boundary and stops
        stop = threading.Event()

        def term(rec: dict) -> None:
            if rec["step"] == 3:
                stop.set()

        with pytest.raises(Interrupted):
            _trainer(settings).train(on_step=term, stop=stop)
        resumed_from = 3
    assert int(list_checkpoints(tmp_path / "b" / "checkpoints")[-1].name.split("-")[1]) == resumed_from
    progress = Capture()
    resumed = _trainer(settings, progress).train(resume=True)
    assert progress.events[0] == {"event": "resume", "step": resumed_from,
                                  "checkpoint": str(tmp_path / "b" / "checkpoints" / f"step-{resumed_from:08d}")}
    new_steps = [e["step"] for e in progress.events if e["event"] == "step"]
    assert new_steps == list(range(resumed_from + 1, 7))
    assert resumed.losses == full.losses  # exact, not approximately
    assert resumed.eval_loss == full.eval_loss
    a, b = _adapter(full.adapter_dir), _adapter(resumed.adapter_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_settings(tiny_model: Path, tmp_path: Path) -> None:
    pairs = write_sample_pairs(tmp_path / "pairs", n=2)
    _trainer(tiny_settings(tiny_model, pairs, tmp_path / "o", max_steps=2, checkpoint_every_steps=1)).train()
    other = tiny_settings(tiny_model, pairs, tmp_path / "o", max_steps=2, checkpoint_every_steps=1, lora_r=8)
    with pytest.raises(RuntimeError, match="made with other settings"):
        _trainer(other).train(resume=True)


def test_tensor_names_are_written_for_the_serving_engine(tiny_model: Path, tmp_path: Path) -> None:
    """peft names a VLM's decoder `model.language_model.layers.N` (transformers' layout): vLLM maps that itself, TGI
    looks up `model.layers.N` and would skip every tensor. The trainer writes the names for its serving engine, and
    the engine's adapter-sync refuses a version whose names that engine would skip."""
    pairs = write_sample_pairs(tmp_path / "p", n=2)
    names = {}
    for engine in ("vllm", "tgi"):
        trainer = _trainer(tiny_settings(tiny_model, pairs, tmp_path / engine, serving_engine=engine))
        out = trainer.save_adapter(tmp_path / engine / "adapter", "tiny")
        names[engine] = tensor_names(out / "adapter_model.safetensors")
        assert len(names[engine]) == 2 * 7 * 2 and unloadable(names[engine], engine) == []
    assert all(".language_model.layers." in n for n in names["vllm"])
    assert unloadable(names["vllm"], "tgi") == sorted(names["vllm"])        # what TGI would have skipped
    assert sorted(names["tgi"]) == sorted(for_engine(n, "tgi") for n in names["vllm"])
    with pytest.raises(StoreRejected, match="bad_key_names"):
        check_names(tmp_path / "vllm" / "adapter", "tgi")
    check_names(tmp_path / "tgi" / "adapter", "tgi")
