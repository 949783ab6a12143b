"""Shared HTTP plumbing of the API judges: one httpx client, vispod.common.http_retry's policy, and
vispod.common.llm_server's one mapping of HTTP errors onto it."""

from __future__ import annotations

import logging
from abc import abstractmethod
from typing import Any

import httpx

from vispod.common.http_retry import Retry
from vispod.common.llm_server import check_answer, transport_errors
from vispod.common.logging import redact
from vispod.judge.backends.base import Completion, JudgeBackendError, JudgePrompt, RemoteJudge

log = logging.getLogger(__name__)


class BadResponse(ValueError):
    """A 2xx response whose body is not the API's shape."""


class HttpJudge(RemoteJudge):
    """Base of the JSON-over-HTTP judges; subclasses build the request and read the reply."""

    def __init__(self, name: str, model: str, **kwargs: Any) -> None:
        super().__init__(name, model, **kwargs)
        self._client = httpx.Client(timeout=httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s)))

    @abstractmethod
    def request(self, prompt: JudgePrompt) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(url, headers, JSON body) of the call; headers may hold the API key (never logged)."""

    @abstractmethod
    def parse(self, body: Any) -> Completion:
        """Reads the reply; raises BadResponse (or KeyError/TypeError/IndexError) on a wrong shape."""

    def complete(self, prompt: JudgePrompt) -> Completion:
        url, headers, body = self.request(prompt)

        def attempt() -> Completion:
            with transport_errors():
                resp = self._client.post(url, headers=headers, json=body)
            # 400/401/403/404...: the request or the key is wrong; retrying will not help.
            check_answer(resp, lambda status, detail: JudgeBackendError(f"{self.name}: HTTP {status}: {detail}"),
                         _snippet(resp) if resp.status_code >= 400 else "")
            try:
                return self.parse(resp.json())
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise Retry(f"bad response: {type(exc).__name__}: {str(exc)[:200]}", reason="bad_response") from exc

        return self.with_retries(attempt)

    def close(self) -> None:
        self._client.close()


def _snippet(resp: httpx.Response) -> str:
    """A short error body for logs and verdict rationales, secret-looking values masked."""
    try:
        return str(redact(resp.text[:300].replace("\n", " ")))
    except Exception:
        return "<unreadable body>"
