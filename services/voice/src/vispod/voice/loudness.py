"""Integrated loudness after ITU-R BS.1770-4 / EBU R128, measured in a stream.

K-weighting (a high shelf and a high pass, coefficients for any rate as in libebur128), mean square
per 100 ms step, 400 ms blocks overlapping by 75%, absolute gate -70 LUFS and relative gate -10 LU.
Only one number per 100 ms is kept, so hours of audio are measured in constant memory.
"""

from __future__ import annotations

import math

import numpy as np

ABSOLUTE_GATE = -70.0
RELATIVE_GATE = -10.0


def _k_weighting(rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = (np.array([(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0]),
             np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]))
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    highpass = (np.array([1.0, -2.0, 1.0]), np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]))
    return [shelf, highpass]


def _lufs(mean_square: float) -> float:
    return -0.691 + 10 * math.log10(mean_square) if mean_square > 0 else -math.inf


class LoudnessMeter:
    """Feed mono float samples in pieces with `add`; `integrated()` gives LUFS of everything so far."""

    def __init__(self, rate: int) -> None:
        from scipy.signal import lfilter_zi  # heavy: scipy.signal (~1 s), only when measuring

        self.rate = rate
        self.step = rate // 10
        self._filters = _k_weighting(rate)
        self._state = [lfilter_zi(b, a) * 0.0 for b, a in self._filters]
        self._rest = np.zeros(0)
        self._steps: list[float] = []
        self._sum_sq = 0.0
        self._count = 0

    def add(self, audio: np.ndarray) -> None:
        from scipy.signal import lfilter  # heavy: scipy.signal, only when measuring

        x = np.asarray(audio, dtype=np.float64)
        for i, (b, a) in enumerate(self._filters):
            x, self._state[i] = lfilter(b, a, x, zi=self._state[i])
        self._sum_sq += float(np.dot(x, x))
        self._count += len(x)
        x = np.concatenate([self._rest, x])
        whole = len(x) // self.step * self.step
        if whole:
            self._steps.extend(np.mean(x[:whole].reshape(-1, self.step) ** 2, axis=1).tolist())
        self._rest = x[whole:]

    def integrated(self) -> float:
        steps = np.array(self._steps)
        if len(steps) < 4:  # shorter than one block: the ungated mean square
            return _lufs(self._sum_sq / self._count) if self._count else -math.inf
        blocks = np.convolve(steps, np.ones(4) / 4, mode="valid")
        loud = blocks[-0.691 + 10 * np.log10(np.maximum(blocks, 1e-20)) > ABSOLUTE_GATE]
        if not len(loud):
            return -math.inf
        relative = _lufs(float(loud.mean())) + RELATIVE_GATE
        gated = loud[-0.691 + 10 * np.log10(loud) > relative]
        return _lufs(float(gated.mean()))


def integrated_loudness(audio: np.ndarray, rate: int) -> float:
    meter = LoudnessMeter(rate)
    meter.add(audio)
    return meter.integrated()


def gain_to(audio: np.ndarray, rate: int, target_lufs: float, max_gain_db: float = 30.0) -> float:
    """Linear gain that brings `audio` to `target_lufs` (1.0 for silence); bounded to +-max_gain_db."""
    measured = integrated_loudness(audio, rate)
    if not math.isfinite(measured):
        return 1.0
    return 10 ** (max(-max_gain_db, min(max_gain_db, target_lufs - measured)) / 20)
