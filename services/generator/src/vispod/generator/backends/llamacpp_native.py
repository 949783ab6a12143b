"""llama.cpp's own voice: its warnings and errors go to our logger and are kept for error messages."""

from __future__ import annotations

import ctypes
import logging
from collections import deque

log = logging.getLogger(__name__)


class LlamaEngineError(RuntimeError):
    """The model or an adapter could not be loaded, or decoding failed."""


_NATIVE_ERRORS: deque[str] = deque(maxlen=20)   # llama.cpp's recent warnings and errors, for error messages
_log_callback = None


def route_native_logs(ll) -> None:
    """llama.cpp logs go to our logger (warnings and errors only), not to stderr; kept for error messages."""
    global _log_callback
    if _log_callback is not None:
        return

    @ll.llama_log_callback
    def callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        if level in (3, 4):   # GGML_LOG_LEVEL_WARN, _ERROR
            line = text.decode("utf-8", "replace").strip()
            if line:
                _NATIVE_ERRORS.append(line)
                log.warning("llama.cpp: %s", line)

    _log_callback = callback
    ll.llama_log_set(callback, ctypes.c_void_p(0))


def last_native_error() -> str:
    return _NATIVE_ERRORS[-1] if _NATIVE_ERRORS else "no detail from llama.cpp"
