"""`vispod train` and `python -m vispod.trainer`: the same flags, over VISPOD_TRAINER_* settings."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vispod.common.settings import load_settings
from vispod.trainer.settings import TrainerSettings

# flag -> setting; every flag is optional so the Job can configure by environment alone.
_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--pairs", "pairs_dir", Path, "pairs folder (pairs.jsonl, images/, manifest.json)"),
    ("--base", "base_model", Path, "base model folder (Qwen3-VL)"),
    ("--out", "output_dir", Path, "working folder: checkpoints/ and adapter/"),
    ("--name", "adapter_name", str, "adapter name"),
    ("--version", "adapter_version", str, "adapter version (default: next integer in the store)"),
    ("--artifacts", "artifact_root", Path, "artifact store root"),
    ("--base-id", "base_model_id", str, "base model id for the manifest"),
    ("--base-revision", "base_model_revision", str, "base model revision for the manifest"),
    ("--lr", "learning_rate", float, "learning rate"),
    ("--lora-r", "lora_r", int, "LoRA rank"),
    ("--lora-alpha", "lora_alpha", float, "LoRA alpha"),
    ("--lora-dropout", "lora_dropout", float, "LoRA dropout"),
    ("--batch", "effective_batch_size", int, "effective batch size (gradient accumulation makes it up)"),
    ("--micro-batch", "micro_batch_size", int, "samples per forward pass"),
    ("--epochs", "epochs", int, "epochs"),
    ("--max-steps", "max_steps", int, "stop after this many optimizer steps (0: the epochs decide)"),
    ("--neftune-alpha", "neftune_alpha", float, "NEFTune noise alpha (0: off)"),
    ("--max-length", "max_length", int, "max tokens per pair"),
    ("--overflow", "overflow", str, "truncate | skip | error when a pair exceeds max length"),
    ("--eval-fraction", "eval_fraction", float, "held-out fraction for the evaluation loss"),
    ("--checkpoint-every", "checkpoint_every_steps", int, "checkpoint every N steps (0: none)"),
    ("--seed", "seed", int, "seed"),
    ("--device", "device", str, "auto | cpu | cuda"),
    ("--quantization", "quantization", str, "none | 4bit (QLoRA: one CUDA GPU)"),
    ("--profile", "profile", str, "paper: refuse any departure from the paper's recipe"),
    ("--metrics-port", "metrics_port", int, "Prometheus port"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, dest, kind, help_text in _FLAGS:
        parser.add_argument(flag, dest=dest, type=kind, default=None,
                            help=f"{help_text} [VISPOD_TRAINER_{dest.upper()}]")
    parser.add_argument("--resume", dest="resume", action="store_true", default=None,
                        help="continue from the latest checkpoint in --out (fresh start if none)")
    parser.add_argument("--no-publish", dest="publish", action="store_false", default=None,
                        help="train and write the adapter, but do not store or announce it")
    parser.add_argument("--no-metrics-server", dest="serve_metrics", action="store_false", default=None)


def settings_from_args(args: argparse.Namespace) -> Any:
    overrides = {dest: getattr(args, dest) for _, dest, _, _ in _FLAGS if getattr(args, dest, None) is not None}
    for dest in ("resume", "publish", "serve_metrics"):
        if getattr(args, dest, None) is not None:
            overrides[dest] = getattr(args, dest)
    return load_settings(TrainerSettings, **overrides)


def _train(args: argparse.Namespace) -> int:
    # deferred: `vispod` registers every command at each start; training pulls torch and transformers (seconds)
    from vispod.trainer.run import main

    return main(settings_from_args(args))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="LoRA fine-tune the base VLM on a pairs folder and publish the adapter")
    add_arguments(p)
    p.set_defaults(func=_train)
