"""The one interface every judge backend implements, and the HTTP retry policy they share."""

from __future__ import annotations

import email.utils
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True)
class JudgeImage:
    mime: str  # image/jpeg or image/png
    data: bytes


@dataclass(frozen=True)
class JudgePrompt:
    system: str
    user: str
    images: tuple[JudgeImage, ...] = ()
    # 0 for the first try, 1 for the retry after an unparseable reply (a backend may then sample).
    attempt: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class BackendError(RuntimeError):
    """A judge call failed for good (retries spent, or a permanent error such as 401)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class RetryPolicy:
    max_retries: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 60.0
    # Injected in tests to record waits without slowing the suite.
    sleep: object = field(default=time.sleep)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, capped."""
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * (2**attempt)))

    def retry_after(self, header: str | None, attempt: int) -> float:
        """Seconds to wait for a 429/503: the server's Retry-After (seconds or HTTP date), capped; else backoff."""
        if header:
            header = header.strip()
            try:
                seconds = float(header)
            except ValueError:
                parsed = email.utils.parsedate_to_datetime(header) if header else None
                seconds = parsed.timestamp() - time.time() if parsed else self.backoff(attempt)
            return max(0.0, min(seconds, self.max_retry_after_s))
        return self.backoff(attempt)

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            self.sleep(seconds)  # type: ignore[operator]


class JudgeBackend(ABC):
    """A judge model behind some API. `name` is its spec as configured (e.g. 'openai:gpt-4o')."""

    kind: str = ""

    def __init__(self, name: str, model: str, accepts_images: bool) -> None:
        self.name = name
        self.model = model
        self.accepts_images = accepts_images

    @abstractmethod
    def complete(self, prompt: JudgePrompt) -> Completion:
        """One reply to the prompt; raises BackendError when the call fails for good."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients or models."""
