"""The one interface every judge backend implements (the HTTP retry policy is vispod.common.http_retry's)."""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from vispod.common.http_retry import RetryPolicy
from vispod.judge import metrics


@dataclass(frozen=True)
class JudgeImage:
    mime: str  # image/jpeg or image/png
    data: bytes

    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{self.b64()}"


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


class JudgeBackendError(RuntimeError):
    """A judge call failed for good (retries spent, or a permanent error such as 401)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable

    @classmethod
    def gave_up(cls, message: str) -> JudgeBackendError:
        """Retries spent on a remote that may answer later."""
        return cls(message, retryable=True)


__all__ = ["Completion", "JudgeBackend", "JudgeBackendError", "JudgeImage", "JudgePrompt", "RemoteJudge", "RetryPolicy"]


class JudgeBackend(ABC):
    """A judge model behind some API. `name` is its spec as configured (e.g. 'openai:gpt-4o')."""

    kind: str = ""

    def __init__(self, name: str, model: str, accepts_images: bool) -> None:
        self.name = name
        self.model = model
        self.accepts_images = accepts_images

    @abstractmethod
    def complete(self, prompt: JudgePrompt) -> Completion:
        """One reply to the prompt; raises JudgeBackendError when the call fails for good."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients or models."""


class RemoteJudge(JudgeBackend):
    """A judge behind a remote API: where it is, its key, and how calls are retried (one policy for all)."""

    def __init__(self, name: str, model: str, *, base_url: str, api_key: str | None, accepts_images: bool,
                 timeout_s: float, retry: RetryPolicy, max_tokens: int, temperature: float) -> None:
        super().__init__(name, model, accepts_images)
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.retry = retry
        self.max_tokens = max_tokens
        self.temperature = temperature

    def with_retries(self, attempt: Callable[[], Completion]) -> Completion:
        """`attempt` raises Retry, ConnectionError or TimeoutError to be tried again; retries are counted."""
        return self.retry.call(attempt, self.name, exhausted=JudgeBackendError.gave_up,
                               on_retry=lambda reason: metrics.RETRIES.labels(self.name, reason).inc())
