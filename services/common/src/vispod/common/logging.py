"""Structured JSON logs to stdout, from one place; secrets are redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|authorization)", re.I)
_SECRET_VALUE = re.compile(r"(sk-[A-Za-z0-9_-]{8,}|Bearer\s+[A-Za-z0-9._-]+)")
_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def redact(value: object) -> object:
    """Masks secret-looking values; dict keys that name secrets are masked whatever their value."""
    if isinstance(value, dict):
        return {k: ("***" if _SECRET_KEY.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, str):
        return _SECRET_VALUE.sub("***", value)
    return value


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
            doc["exc"] = self.formatException(record.exc_info)
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
