"""The gate's one settings class (env prefix VISPOD_GATE_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from vispod.common.settings import ServiceSettings

TiePolicy = Literal["half", "loss", "exclude"]


class GateSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VISPOD_GATE_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "gate"

    # The services the gate evaluates through (gRPC, host:port).
    generator_addr: str = "127.0.0.1:8081"
    metrics_addr: str = "127.0.0.1:8081"
    judge_addr: str = "127.0.0.1:8081"

    # Evaluation set: story folders (story_<id>/story.json + image_N.*); see vispod.gate.evalset.
    eval_set: Path | None = None
    # At most this many stories of the set (0: all), taken in name order so runs are comparable.
    max_stories: int = Field(default=0, ge=0)
    speakers: list[str] = Field(default_factory=lambda: ["Speaker 1", "Speaker 2"])
    target_words: int = Field(default=0, ge=0)
    seed: int = 7

    # Decision rule: promote only if the Wilson lower bound of the candidate's win rate on `criterion`
    # is above `min_win_rate_lower` AND mean CLIPScore falls by at most `max_grounding_drop` points.
    criterion: str = "naturalness"
    judges: list[str] = Field(default_factory=list)  # empty: every judge the judge service has
    tie_policy: TiePolicy = "half"
    min_win_rate_lower: float = Field(default=0.5, ge=0.0, le=1.0)
    max_grounding_drop: float = Field(default=1.0, ge=0.0)
    # A plan fixed in advance (vispod.evaluation's plans/*.yaml; mount it): its decision rule (vispod.gate.policy,
    # the one the mini-paper decides by) must pass too, on the metrics service's numbers for the candidate against
    # the active model, story by story. Unset: the judge and CLIPScore rule above alone.
    plan_file: Path | None = None
    # When the judged rule lacks its evidence (no valid verdict from any judge, or grounding not measured: e.g. a
    # CPU cluster with a 135M judge and no CLIP weights): "reject" (no promotion), or "plan": the judge is left out
    # and the plan's rule alone decides, on the metrics service's numbers; the decision record says which decided.
    without_judge_evidence: Literal["reject", "plan"] = "reject"
    # What a failed gate does to the candidate: leave it a candidate (the rule) or reject it for good.
    reject_action: Literal["keep_candidate", "reject"] = "keep_candidate"
    # Also apply the decision through GeneratorService.UpdateAdapter (secondary; the event is primary).
    apply_via_grpc: bool = True

    # Canary: a candidate that passes the offline evaluation first serves `canary_share` of default traffic
    # (sticky per image set); 0 promotes straight to ACTIVE. Live dialogues of canary and active traffic
    # (vispod.dialogue.generated), scored by the gate's own Score calls, decide: see vispod.gate.canary.
    canary_share: float = Field(default=0.1, ge=0.0, le=1.0)
    canary_min_samples: int = Field(default=20, ge=1)
    # Wald sign test: false rollback rate (split over the metrics), false promotion rate, and the probability
    # that a canary dialogue is the worse of a pair at which a canary counts as worse.
    canary_alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    canary_beta: float = Field(default=0.10, gt=0.0, lt=0.5)
    canary_p_worse: float = Field(default=0.70, gt=0.5, lt=1.0)
    # Guards: failure-rate rise and mean-latency ratio over the active adapter's; undecided after this: rollback.
    canary_max_error_rise: float = Field(default=0.05, ge=0.0, le=1.0)
    canary_max_latency_ratio: float = Field(default=1.5, ge=1.0)
    canary_max_duration_s: float = Field(default=3600.0, gt=0)
    canary_refresh_s: float = Field(default=2.0, gt=0)
    canary_tick_s: float = Field(default=30.0, gt=0)
    # The gate's Ed25519 private key (identity "gate", a mounted Secret): signs every lifecycle command it sends.
    # Generators obey only signed commands; without a key the gate's decisions reach them over gRPC alone.
    signing_key_file: Path | None = None

    # Robustness: per-RPC deadline, whole-evaluation budget, and how long to wait for the generator to register
    # the candidate (it consumes the same AdapterPublished event).
    rpc_timeout_s: float = Field(default=300.0, gt=0)
    # Must stay under VISPOD_KAFKA_MAX_POLL_INTERVAL_MS: the evaluation runs inside the consumer's poll loop.
    evaluation_timeout_s: float = Field(default=480.0, gt=0)
    candidate_wait_s: float = Field(default=60.0, ge=0)
    poll_interval_s: float = Field(default=0.5, gt=0)

    # Decisions log (JSON lines) and the HTML report; default under artifact_root/gate/.
    decisions_log: Path | None = None
    report_path: Path | None = None

    @field_validator("plan_file")
    @classmethod
    def _plan_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"VISPOD_GATE_PLAN_FILE: no such file: {value}")
        return value

    def decisions_path(self) -> Path:
        return self.decisions_log or (self.artifact_root / "gate" / "decisions.jsonl")

    def report_file(self) -> Path:
        return self.report_path or (self.artifact_root / "gate" / "report.html")

    @model_validator(mode="after")
    def _plan_for_fallback(self) -> GateSettings:
        if self.without_judge_evidence == "plan" and self.plan_file is None:
            raise ValueError("VISPOD_GATE_WITHOUT_JUDGE_EVIDENCE=plan needs VISPOD_GATE_PLAN_FILE (the rule that "
                             "decides without the judge)")
        return self

    @model_validator(mode="after")
    def _fits_poll_interval(self) -> GateSettings:
        limit = self.kafka.max_poll_interval_ms / 1000
        # Waiting for the candidate, the decision's calls and the commit come on top of the evaluation budget.
        needed = self.evaluation_timeout_s + self.candidate_wait_s + 30
        if needed > limit:
            raise ValueError(f"evaluation_timeout_s + candidate_wait_s + 30 s = {needed:g} s exceeds the Kafka "
                             f"max poll interval ({limit:g} s): raise VISPOD_KAFKA_MAX_POLL_INTERVAL_MS or lower "
                             "VISPOD_GATE_EVALUATION_TIMEOUT_S")
        return self
