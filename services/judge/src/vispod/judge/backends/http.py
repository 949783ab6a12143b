"""Shared HTTP plumbing of the API judges: one httpx client, bounded retries, 429 + Retry-After."""

from __future__ import annotations

import logging
from abc import abstractmethod
from typing import Any

import httpx

from vispod.common.logging import redact
from vispod.judge import metrics
from vispod.judge.backends.base import BackendError, Completion, JudgeBackend, JudgePrompt, RetryPolicy

log = logging.getLogger(__name__)
# 408 timeout, 409 lock, 425 too early, 429 rate limit, 5xx and Anthropic's 529 overloaded: worth retrying.
_RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504, 529}


class BadResponse(ValueError):
    """A 2xx response whose body is not the API's shape."""


class HttpJudge(JudgeBackend):
    """Base of the JSON-over-HTTP judges; subclasses build the request and read the reply."""

    def __init__(
        self,
        name: str,
        model: str,
        *,
        base_url: str,
        api_key: str | None,
        accepts_images: bool,
        timeout_s: float,
        retry: RetryPolicy,
        max_tokens: int,
        temperature: float,
    ) -> None:
        super().__init__(name, model, accepts_images)
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.retry = retry
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)))

    @abstractmethod
    def request(self, prompt: JudgePrompt) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(url, headers, JSON body) of the call; headers may hold the API key (never logged)."""

    @abstractmethod
    def parse(self, body: Any) -> Completion:
        """Reads the reply; raises BadResponse (or KeyError/TypeError/IndexError) on a wrong shape."""

    def complete(self, prompt: JudgePrompt) -> Completion:
        url, headers, body = self.request(prompt)
        last = ""
        for attempt in range(self.retry.max_retries + 1):
            final = attempt == self.retry.max_retries
            try:
                resp = self._client.post(url, headers=headers, json=body)
            except httpx.TimeoutException:
                last = "timeout"
                metrics.RETRIES.labels(self.name, "timeout").inc()
                if not final:
                    self.retry.wait(self.retry.backoff(attempt))
                continue
            except httpx.TransportError as exc:
                last = f"transport error: {type(exc).__name__}"
                metrics.RETRIES.labels(self.name, "server").inc()
                if not final:
                    self.retry.wait(self.retry.backoff(attempt))
                continue
            if resp.status_code in _RETRYABLE:
                reason = "rate_limited" if resp.status_code == 429 else "server"
                last = f"HTTP {resp.status_code}: {_snippet(resp)}"
                metrics.RETRIES.labels(self.name, reason).inc()
                log.warning(
                    "judge call retryable", extra={"judge": self.name, "status": resp.status_code, "attempt": attempt}
                )
                if not final:
                    if resp.status_code in (429, 503, 529):
                        self.retry.wait(self.retry.retry_after(resp.headers.get("retry-after"), attempt))
                    else:
                        self.retry.wait(self.retry.backoff(attempt))
                continue
            if resp.status_code >= 400:
                # 400/401/403/404...: the request or the key is wrong; retrying will not help.
                raise BackendError(f"{self.name}: HTTP {resp.status_code}: {_snippet(resp)}")
            try:
                return self.parse(resp.json())
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                last = f"bad response: {type(exc).__name__}: {str(exc)[:200]}"
                metrics.RETRIES.labels(self.name, "bad_response").inc()
                if not final:
                    self.retry.wait(self.retry.backoff(attempt))
        raise BackendError(f"{self.name}: gave up after {self.retry.max_retries + 1} attempts ({last})", retryable=True)

    def close(self) -> None:
        self._client.close()


def _snippet(resp: httpx.Response) -> str:
    """A short error body for logs and verdict rationales, secret-looking values masked."""
    try:
        return str(redact(resp.text[:300].replace("\n", " ")))
    except Exception:
        return "<unreadable body>"
