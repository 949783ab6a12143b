"""The one interface every speech engine implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class EngineError(RuntimeError):
    """Synthesis failed (a transient or configuration problem, not the dialogue's fault)."""


class Engine(Protocol):
    name: str

    def voices(self) -> list[str]:
        """Voice names, in the order speakers receive them by default."""
        ...

    def synthesize(self, text: str, voice: str) -> np.ndarray:
        """Mono float32 audio at audio.SAMPLE_RATE for one bounded chunk of text."""
        ...

    def close(self) -> None: ...
