"""Retries for remote engines: 429/503 and connection errors, honouring Retry-After, else capped backoff."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

from vispod.generator.backends.base import BackendUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


class RetryableHTTP(Exception):
    """Raised inside an attempt for a status worth retrying; carries the server's Retry-After."""

    def __init__(self, status: int, retry_after: float | None, detail: str = "") -> None:
        super().__init__(f"HTTP {status}{': ' + detail if detail else ''}")
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    base_s: float = 0.5
    max_s: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_s)
        return min(self.max_s, self.base_s * (2 ** attempt)) * (0.5 + random.random() / 2)

    def call(self, fn: Callable[[], T], what: str, deadline: float | None = None) -> T:
        """fn raises RetryableHTTP or OSError-like connection errors (ConnectionError, TimeoutError) to retry."""
        attempt = 0
        while True:
            try:
                return fn()
            except (RetryableHTTP, ConnectionError, TimeoutError) as exc:
                retry_after = exc.retry_after if isinstance(exc, RetryableHTTP) else None
                wait = self.delay(attempt, retry_after)
                late = deadline is not None and time.monotonic() + wait > deadline
                if attempt >= self.retries or late:
                    raise BackendUnavailable(f"{what}: {exc} (after {attempt + 1} attempt(s))") from exc
                log.warning("retrying %s in %.2fs: %s", what, wait, exc)
                time.sleep(wait)
                attempt += 1
