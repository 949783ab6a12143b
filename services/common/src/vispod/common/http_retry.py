"""The one retry policy of vispod's HTTP clients (generator engines, judge APIs), and their SSE reader.

Worth another try: a retryable status (rate limits, overload, gateway errors), a timeout or a broken
connection. The server's Retry-After (seconds or an HTTP date) is honoured up to `max_retry_after_s`;
otherwise exponential backoff with full jitter, capped. The transport-neutral parts live here; each client
turns its library's errors into `Retry`, `ConnectionError` or `TimeoutError` inside an attempt.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from vispod.common.errors import Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
# 408 timeout, 409 lock, 425 too early, 429 rate limit, 5xx and Anthropic's 529 overloaded.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


class Retry(Exception):
    """Raised inside an attempt for an outcome worth retrying; `reason` labels the retry in metrics."""

    def __init__(self, detail: str, retry_after: float | None = None, reason: str = "server") -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.reason = reason


class RetriesExhausted(Unavailable):
    """Every attempt failed with something worth retrying: the remote end may answer later."""


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


def check_status(status: int, headers: Mapping[str, str] | None, detail: str = "",
                 retryable: frozenset[int] = RETRYABLE_STATUS) -> None:
    """Raises Retry for a retryable HTTP status (with the server's Retry-After); returns for any other."""
    if status in retryable:
        retry_after = parse_retry_after((headers or {}).get("retry-after"))
        raise Retry(f"HTTP {status}{': ' + detail if detail else ''}", retry_after,
                    "rate_limited" if status == 429 else "server")


@dataclass(frozen=True)
class RetryPolicy:
    """How many retries and how long to wait between them; `call` runs a request under the policy."""

    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    max_retry_after_s: float = 60.0
    # Injected in tests to record waits without slowing the suite.
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, capped."""
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * (2 ** attempt)))

    def delay(self, attempt: int, retry_after: float | None) -> float:
        return min(retry_after, self.max_retry_after_s) if retry_after is not None else self.backoff(attempt)

    def call(self, fn: Callable[[], T], what: str, *, deadline: float | None = None,
             exhausted: Callable[[str], Exception] = RetriesExhausted,
             on_retry: Callable[[str], None] | None = None) -> T:
        """Runs `fn` until it returns; it raises Retry, ConnectionError or TimeoutError to be tried again.
        After `max_retries` retries, or when the next wait would pass `deadline` (time.monotonic()), raises
        `exhausted(message)`. `on_retry(reason)` sees every failed attempt (e.g. to count it)."""
        attempt = 0
        while True:
            try:
                return fn()
            except (Retry, ConnectionError, TimeoutError) as exc:
                reason = exc.reason if isinstance(exc, Retry) else "timeout" if isinstance(exc, TimeoutError) \
                    else "server"
                if on_retry:
                    on_retry(reason)
                wait = self.delay(attempt, exc.retry_after if isinstance(exc, Retry) else None)
                late = deadline is not None and time.monotonic() + wait > deadline
                if attempt >= self.max_retries or late:
                    raise exhausted(f"{what}: {exc} (after {attempt + 1} attempt(s))") from exc
                log.warning("retrying %s in %.2fs: %s", what, wait, exc)
                if wait > 0:
                    self.sleep(wait)
                attempt += 1


def sse_events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON events of a server-sent-event stream (`data: {json}` lines) until `data: [DONE]`."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        yield json.loads(data)
