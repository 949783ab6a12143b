"""Structured JSON logs to stdout, from one place; secrets are redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|passwd|authorization|credential)", re.I)
# Values that are secrets whatever field they sit in: provider keys (OpenAI/Anthropic `sk-`, Google
# `AIza`, Hugging Face `hf_`, Google OAuth `ya29.`), bearer/basic credentials, `key=value` pairs.
_SECRET_VALUE = re.compile(
    r"\b(?:sk-[A-Za-z0-9_-]{8,}|AIza[0-9A-Za-z_-]{30,}|hf_[A-Za-z0-9]{20,}|ya29\.[0-9A-Za-z_.-]{20,})"
)
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]+", re.I)
_KEY_VALUE = re.compile(r"\b(api[_-]?key|access[_-]?token|token|secret|password|passwd)(\s*[=:]\s*)[^\s&,;'\")]+", re.I)
# scheme://user:password@host — the whole userinfo goes.
_URL_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/\s@:]+:[^/\s@]+@", re.I)
_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def redact_text(text: str) -> str:
    text = _SECRET_VALUE.sub("***", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} ***", text)
    text = _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    return _URL_USERINFO.sub(r"\1***@", text)


def redact(value: object) -> object:
    """Masks secret-looking values at any depth; dict keys that name secrets are masked whatever their value."""
    if isinstance(value, dict):
        return {k: ("***" if _SECRET_KEY.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact_text(str(value))  # what json.dumps(default=str) would print


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                doc[key] = "***" if _SECRET_KEY.search(key) else redact(value)
        if record.exc_info:
            doc["exc"] = redact_text(self.formatException(record.exc_info))
        if record.stack_info:
            doc["stack"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(doc, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kafka-python is chatty at INFO.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # Its event loop warns whenever a task runs >100 ms, which a loaded CPU makes routine.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
