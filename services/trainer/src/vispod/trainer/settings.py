"""The trainer's one settings class (VISPOD_TRAINER_*): the paper's LoRA recipe as defaults, all overridable."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from vispod.common.adapter_store.settings import AdapterStoreSettings
from vispod.common.settings import ServiceSettings

# The paper's targets: every attention and MLP projection of the language model.
PAPER_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# The paper's recipe (SPoRC-VIST: Qwen3-VL-32B, 8×A100-80GB, DeepSpeed ZeRO-3, ~12 h): the settings' defaults, and
# what `profile=paper` holds a run to. effective_batch_size is global: the world size changes the accumulation,
# never the recipe.
PAPER_RECIPE: dict[str, object] = {
    "lora_r": 16, "lora_alpha": 32.0, "lora_dropout": 0.05, "lora_target_modules": PAPER_TARGET_MODULES,
    "learning_rate": 4e-6, "effective_batch_size": 32, "epochs": 1, "neftune_alpha": 5.0, "max_length": 8192,
}


class TrainerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VISPOD_TRAINER_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "trainer"

    # Inputs and outputs.
    pairs_dir: Path | None = None           # holds pairs.jsonl, images/, manifest.json
    base_model: Path | None = None          # local folder loadable by AutoModelForImageTextToText
    base_model_id: str = ""                 # default: the config's name or the folder name
    base_model_revision: str = ""           # default: HF snapshot commit, else a hash of config + weight index
    output_dir: Path = Path("trainer-out")  # checkpoints/ and adapter/ go here
    adapter_name: str = "vispod-dialogue"
    adapter_version: str = ""               # default: see version_scheme
    version_scheme: Literal["increment", "timestamp"] = "increment"
    publish: bool = True                    # store + AdapterPublished event after training
    # The adapter store and the signing key (VISPOD_ADAPTER_STORE_*); without a URL: unsigned local folders.
    adapter_store: AdapterStoreSettings = Field(default_factory=AdapterStoreSettings)
    code_version: str = ""                  # default: git describe, else the package version
    # The engine that will load the adapter: its tensor names are written the way that engine looks them up
    # (vispod.common.adapter_store.key_names) and checked before publishing.
    serving_engine: Literal["vllm", "tgi"] = "vllm"

    # LoRA (paper: r 16, alpha 32, dropout 0.05, q/k/v/o/gate/up/down of the language model).
    lora_r: int = Field(default=PAPER_RECIPE["lora_r"], ge=1)
    lora_alpha: float = Field(default=PAPER_RECIPE["lora_alpha"], gt=0)
    lora_dropout: float = Field(default=PAPER_RECIPE["lora_dropout"], ge=0, lt=1)
    lora_target_modules: list[str] = Field(default_factory=lambda: list(PAPER_TARGET_MODULES))

    # Optimisation (paper: lr 4e-6, effective batch 32, 1 epoch, NEFTune alpha 5, max length 8192).
    learning_rate: float = Field(default=PAPER_RECIPE["learning_rate"], gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float = Field(default=1.0, ge=0)  # 0 disables clipping
    warmup_ratio: float = Field(default=0.03, ge=0, le=1)
    effective_batch_size: int = Field(default=PAPER_RECIPE["effective_batch_size"], ge=1)
    micro_batch_size: int = Field(default=1, ge=1)    # samples per forward; accumulation makes up the rest
    epochs: int = Field(default=PAPER_RECIPE["epochs"], ge=1)
    max_steps: int = Field(default=0, ge=0)           # 0: as many as the epochs take
    neftune_alpha: float = Field(default=PAPER_RECIPE["neftune_alpha"], ge=0)   # 0 disables NEFTune
    max_length: int = Field(default=PAPER_RECIPE["max_length"], ge=16)
    # When prompt + dialogue exceed max_length: cut the dialogue's tail, skip the pair, or stop. Each case is
    # counted and logged; a prompt (images included) that alone does not fit is always skipped and counted.
    overflow: Literal["truncate", "skip", "error"] = "truncate"
    min_dialogue_tokens: int = Field(default=16, ge=1)  # truncation that leaves fewer than this skips instead
    images_per_pair: int = Field(default=5, ge=0)       # 0: any number
    label_end_of_turn: bool = True                      # learn the end-of-turn token so generation stops

    # "paper": the run must use the paper's recipe (PAPER_RECIPE); a setting that departs from it is an error, so
    # a run that claims the recipe has it. "": any values.
    profile: Literal["", "paper"] = ""

    # Evaluation, checkpoints, reproducibility.
    eval_fraction: float = Field(default=0.05, ge=0, lt=1)
    eval_max_samples: int = Field(default=200, ge=0)
    eval_every_steps: int = Field(default=0, ge=0)      # 0: only at the end
    checkpoint_every_steps: int = Field(default=50, ge=0)  # 0: no intermediate checkpoints
    keep_checkpoints: int = Field(default=2, ge=1)
    seed: int = 1234
    resume: bool = False

    # Hardware.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool | None = None                    # default: on with CUDA
    gradient_checkpointing: bool | None = None  # default: on with CUDA
    # "4bit": QLoRA, the one-GPU path for a base that does not fit in 16 bits (bitsandbytes NF4, double quantised,
    # bf16 compute); needs a CUDA device and one process. "none": the base in bf16/fp32.
    quantization: Literal["none", "4bit"] = "none"
    # Under torchrun (WORLD_SIZE > 1) the model is always sharded with FSDP; true also shards a single process
    # (to measure the FSDP path on one device).
    fsdp: bool = False
    # How long a collective may wait for the other ranks (a dead peer on NCCL surfaces after this).
    dist_timeout_s: float = Field(default=1800.0, gt=0)
    data_workers: int = Field(default=1, ge=0)  # >0: encode the next step in a background thread; 0: inline
    serve_metrics: bool = True
    # Keep /metrics up this long after the run so Prometheus scrapes the final values of a short-lived Job pod.
    metrics_linger_s: float = Field(default=30.0, ge=0)
    torch_threads: int = Field(default=0, ge=0)  # 0: torch's default; 1 suits tiny CPU models on shared machines

    @model_validator(mode="after")
    def _check(self) -> TrainerSettings:
        if self.effective_batch_size % self.micro_batch_size:
            raise ValueError("effective_batch_size must be a multiple of micro_batch_size")
        if not self.lora_target_modules:
            raise ValueError("lora_target_modules must not be empty")
        if self.profile == "paper":
            off = {k: getattr(self, k) for k, v in PAPER_RECIPE.items() if getattr(self, k) != v}
            if off:
                raise ValueError(f"profile=paper fixes {sorted(off)} to {[PAPER_RECIPE[k] for k in sorted(off)]}; "
                                 f"got {[off[k] for k in sorted(off)]}: unset them or drop the profile")
        if self.quantization == "4bit" and self.device == "cpu":
            raise ValueError("quantization=4bit (QLoRA) needs a CUDA GPU (bitsandbytes 4-bit kernels); on CPU train "
                             "with quantization=none")
        return self

    @property
    def grad_accum_steps(self) -> int:
        return self.effective_batch_size // self.micro_batch_size

    def hyperparameters(self) -> dict[str, object]:
        """What went into the adapter, for its manifest."""
        keys = ["lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "learning_rate", "weight_decay",
                "adam_beta1", "adam_beta2", "adam_eps", "max_grad_norm", "warmup_ratio", "effective_batch_size",
                "micro_batch_size", "epochs", "max_steps", "neftune_alpha", "max_length", "overflow",
                "min_dialogue_tokens", "images_per_pair", "label_end_of_turn", "eval_fraction", "seed"]
        out = {k: getattr(self, k) for k in keys}
        out["grad_accum_steps"] = self.grad_accum_steps
        out["recipe"] = "paper" if all(getattr(self, k) == v for k, v in PAPER_RECIPE.items()) else "custom"
        out["quantization"] = self.quantization
        return out
