"""An in-process judge backend with a fixed behaviour, for protocol and service tests (no network)."""

from __future__ import annotations

import json
import threading

from vispod.judge.backends.base import Completion, JudgeBackend, JudgePrompt


class ScriptedJudge(JudgeBackend):
    """Prefers whichever shown dialogue contains `marker`; counts its calls."""

    kind = "scripted"

    def __init__(self, name: str = "scripted:prefers-good", marker: str = "GOOD") -> None:
        super().__init__(name, "scripted", accepts_images=True)
        self.marker = marker
        self.calls = 0
        self.images_seen = 0
        self._lock = threading.Lock()

    def complete(self, prompt: JudgePrompt) -> Completion:
        with self._lock:
            self.calls += 1
            self.images_seen += len(prompt.images)
        shown_a = prompt.user.split("Dialogue A:", 1)[1].split("Dialogue B:", 1)[0]
        winner = "A" if self.marker in shown_a else "B"
        return Completion(json.dumps({"winner": winner, "rationale": "better"}), 50, 10)
