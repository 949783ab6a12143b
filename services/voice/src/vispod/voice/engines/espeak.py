"""The espeak-ng program as a speech engine: always available, robotic, fast (the fallback)."""

from __future__ import annotations

import io
import re
import subprocess

import numpy as np

from vispod.voice.audio import resample
from vispod.voice.engines.base import EngineError

_VOICE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]+)*(\+[A-Za-z0-9_]+)?$")


class EspeakEngine:
    name = "espeak"

    def __init__(self, voices: list[str], program: str = "espeak-ng", timeout_s: float = 60.0) -> None:
        bad = [v for v in voices if not _VOICE.match(v)]
        if bad:
            raise EngineError(f"bad espeak-ng voice names {bad}: expected e.g. en-us+m3")
        self._voices = list(voices)
        self.program = program
        self.timeout_s = timeout_s

    def voices(self) -> list[str]:
        return list(self._voices)

    def synthesize(self, text: str, voice: str) -> np.ndarray:
        import soundfile as sf  # deferred: libsndfile, only when speaking

        try:
            proc = subprocess.run([self.program, "-v", voice, "--stdout"], input=text.encode(),
                                  capture_output=True, timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineError(f"{self.program}: {exc}") from exc
        if proc.returncode != 0 or not proc.stdout:
            raise EngineError(f"{self.program} -v {voice} failed: {proc.stderr.decode(errors='replace')[:200]}")
        # espeak-ng writes a streaming WAV header (sizes unknown): read the samples after the header.
        data, rate = sf.read(io.BytesIO(_fix_stream_header(proc.stdout)), dtype="float32")
        return resample(np.asarray(data).reshape(-1), rate)

    def close(self) -> None:
        pass


def _fix_stream_header(wav: bytes) -> bytes:
    """espeak-ng --stdout leaves the RIFF and data sizes at 0x7fffffff; set them from the real length."""
    if wav[:4] != b"RIFF" or wav[36:40] != b"data":
        return wav
    size = len(wav) - 44
    return b"RIFF" + (size + 36).to_bytes(4, "little") + wav[8:40] + size.to_bytes(4, "little") + wav[44:]
