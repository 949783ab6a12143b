"""Speech engines behind one interface (engines.base.Engine), built from the settings."""

from __future__ import annotations

from vispod.voice.engines.base import Engine, EngineError
from vispod.voice.engines.espeak import EspeakEngine
from vispod.voice.engines.openai_speech import OpenAISpeechEngine
from vispod.voice.engines.piper import PiperEngine
from vispod.voice.settings import VoiceSettings


def build_engine(settings: VoiceSettings) -> Engine:
    if settings.engine == "piper":
        return PiperEngine(settings.piper_model, settings.piper_threads, settings.espeak_program,
                           sessions=settings.synthesis_workers)
    if settings.engine == "espeak":
        return EspeakEngine(settings.espeak_voices, settings.espeak_program)
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAISpeechEngine(settings.openai_base_url, settings.openai_model, settings.openai_voices, key,
                              settings.openai_timeout_s, settings.openai_max_retries)


__all__ = ["Engine", "EngineError", "build_engine"]
