"""What the JSON log formatter must never print: keys, tokens and passwords in any shape they arrive in."""

from __future__ import annotations

import json
import logging

from vispod.common.logging import JsonFormatter, redact

GEMINI = "AIzaSyD3x4mpl3K3yW1thEnough_Chars-0123456"
HF = "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


def _line(logger: str, msg: str, *args: object, exc: BaseException | None = None, **extra: object) -> str:
    record = logging.LogRecord(logger, logging.ERROR, __file__, 1, msg, args,
                               (type(exc), exc, exc.__traceback__) if exc else None)
    record.__dict__.update(extra)
    return JsonFormatter("test").format(record)


def test_provider_keys_and_url_credentials_are_masked_in_messages() -> None:
    line = _line("x", "calling gemini with key=%s then hf %s via https://bob:hunter2@store.example/v1 and %s",
                 GEMINI, HF, "postgres://svc:pa55w0rd@db:5432/x")
    for secret in (GEMINI, HF, "hunter2", "pa55w0rd"):
        assert secret not in line
    doc = json.loads(line)
    assert "https://***@store.example/v1" in doc["msg"]


def test_bearer_tokens_in_list_and_tuple_fields_are_masked() -> None:
    line = _line("x", "request", headers=[("Authorization", f"Bearer {BEARER}")], argv=["--token", HF],
                 nested={"calls": [{"auth": f"Bearer {BEARER}"}]})
    assert BEARER not in line and HF not in line
    assert redact(["a", f"Bearer {BEARER}"]) == ["a", "Bearer ***"]


def test_secrets_inside_tracebacks_are_masked() -> None:
    try:
        raise RuntimeError(f"upstream said 401 for key {GEMINI} (Authorization: Bearer {BEARER})")
    except RuntimeError as exc:
        line = _line("x", "judge call failed", exc=exc)
    doc = json.loads(line)
    assert "RuntimeError" in doc["exc"] and "Traceback" in doc["exc"]
    assert GEMINI not in line and BEARER not in line


def test_harmless_text_is_left_alone() -> None:
    text = "Speaker 1: the hf_ prefix and AIza are words here; see https://example.org/path?q=1"
    assert redact(text) == text
