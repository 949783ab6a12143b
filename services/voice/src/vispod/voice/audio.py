"""Sample-level helpers: the one output rate, resampling, PCM conversion, a peak guard."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

# Every engine delivers mono float32 at this rate; Opus accepts it natively.
SAMPLE_RATE = 24_000
# Peaks above -1 dBFS are softly compressed after loudness gain.
PEAK_LIMIT = 10 ** (-1 / 20)


def resample(audio: np.ndarray, src_rate: float, dst_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling by the nearest small rational ratio (error < 0.1%)."""
    from scipy.signal import resample_poly  # heavy: scipy.signal (~1 s), only when resampling

    ratio = Fraction(dst_rate / src_rate).limit_denominator(1000)
    if ratio == 1:
        return audio.astype(np.float32, copy=False)
    return resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)


def soft_limit(audio: np.ndarray, threshold: float = PEAK_LIMIT) -> np.ndarray:
    """Samples above `threshold` bend towards 1.0 (tanh knee); below it nothing changes."""
    mag = np.abs(audio)
    over = mag > threshold
    if not over.any():
        return audio
    head = 1.0 - threshold
    out = audio.copy()
    out[over] = np.sign(audio[over]) * (threshold + head * np.tanh((mag[over] - threshold) / head))
    return out


def to_pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)
