"""Local HTTP servers (127.0.0.1, a thread each) speaking the judge APIs' request/response shapes.

Each server checks what the real API requires (path, auth header, body shape) and answers 400
otherwise; a script of faults is served first, one per request: "429" (with Retry-After),
"500", "badjson" (a 200 whose body is not JSON), "401", "slow" (answers after 1.5 s).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from service_fixtures import HttpServer, JsonHandler

KEY = "sk-test-SECRET-1234567890"
Reply = Callable[[str], str]  # user prompt text -> the model's reply text


class ShapeError(ValueError):
    pass


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise ShapeError(what)


def _openai_like(path: str, headers: dict[str, str], body: dict[str, Any], reply: Reply, tgi: bool) -> dict:
    _need(path == "/v1/chat/completions", f"path {path}")
    if not tgi:
        _need(headers.get("authorization") == f"Bearer {KEY}", "Authorization: Bearer <key>")
        _need(isinstance(body.get("model"), str) and body["model"], "model")
    msgs = body.get("messages")
    _need(isinstance(msgs, list) and msgs[0]["role"] == "system" and msgs[-1]["role"] == "user", "messages")
    parts = msgs[-1]["content"]
    if isinstance(parts, str):  # the API's plain-text form of a user message without images
        parts = [{"type": "text", "text": parts}]
    _need(isinstance(parts, list), "user content parts")
    text = "".join(p["text"] for p in parts if p["type"] == "text")
    for p in parts:
        if p["type"] == "image_url":
            _need(p["image_url"]["url"].startswith("data:image/jpeg;base64,"), "image data URL")
    out = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": body.get("model") or "tgi",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply(text)}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }
    if tgi:
        out["system_fingerprint"] = "3.3.6-native"
    return out


def openai(path: str, headers: dict[str, str], body: dict[str, Any], reply: Reply) -> dict:
    return _openai_like(path, headers, body, reply, tgi=False)


def tgi(path: str, headers: dict[str, str], body: dict[str, Any], reply: Reply) -> dict:
    return _openai_like(path, headers, body, reply, tgi=True)


def anthropic(path: str, headers: dict[str, str], body: dict[str, Any], reply: Reply) -> dict:
    _need(path == "/v1/messages", f"path {path}")
    _need(headers.get("x-api-key") == KEY, "x-api-key")
    _need(bool(headers.get("anthropic-version")), "anthropic-version")
    _need(isinstance(body.get("max_tokens"), int), "max_tokens")
    _need(isinstance(body.get("system"), str), "system")
    content = body["messages"][0]["content"]
    for block in content:
        if block["type"] == "image":
            src = block["source"]
            _need(src["type"] == "base64" and src["media_type"] == "image/jpeg" and src["data"], "image block")
    text = "".join(b["text"] for b in content if b["type"] == "text")
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [{"type": "text", "text": reply(text)}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 100, "output_tokens": 20},
    }


def gemini(path: str, headers: dict[str, str], body: dict[str, Any], reply: Reply) -> dict:
    _need(re.fullmatch(r"/v1beta/models/[\w.\-]+:generateContent", path) is not None, f"path {path}")
    _need(headers.get("x-goog-api-key") == KEY, "x-goog-api-key")
    _need("systemInstruction" in body and "generationConfig" in body, "systemInstruction/generationConfig")
    parts = body["contents"][0]["parts"]
    for p in parts:
        if "inlineData" in p:
            _need(p["inlineData"]["mimeType"] == "image/jpeg" and p["inlineData"]["data"], "inlineData")
    text = "".join(p.get("text", "") for p in parts)
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": reply(text)}]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 120},
    }


def tgi_generate(path: str, headers: dict[str, str], body: dict[str, Any], reply: Reply) -> dict:
    """TGI's native route: POST / {"inputs", "parameters"}; images as markdown data URLs in `inputs`."""
    _need(path in ("/", "/generate"), f"path {path}")
    _need(isinstance(body.get("inputs"), str) and isinstance(body.get("parameters"), dict), "inputs/parameters")
    params = body["parameters"]
    _need(isinstance(params.get("max_new_tokens"), int), "max_new_tokens")
    _need(params.get("temperature") is None or params["temperature"] > 0, "temperature must be > 0")
    images = re.findall(r"!\[\]\(data:image/jpeg;base64,[A-Za-z0-9+/=]+\)", body["inputs"])
    _need(body["inputs"].count("![](") == len(images), "markdown images")
    text = re.sub(r"!\[\]\([^)]*\)", "", body["inputs"])
    details = {
        "finish_reason": "eos_token",
        "generated_tokens": 20,
        "seed": None,
        "tokens": [],
        "prefill": [{"id": i, "text": "x", "logprob": None} for i in range(100)],
    }
    return {"generated_text": reply(text), "details": details}


APIS = {"openai": openai, "anthropic": anthropic, "gemini": gemini, "tgi": tgi, "tgi_generate": tgi_generate}


class FakeAPI:
    """Start with `with FakeAPI("openai", reply) as api:`; `api.url` is the base URL, `api.requests` the log."""

    def __init__(self, api: str, reply: Reply, script: list[str] | None = None, retry_after: str = "1") -> None:
        self.api = api
        self.reply = reply
        self.script = list(script or [])
        self.retry_after = retry_after
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(JsonHandler):
            protocol_version = "HTTP/1.0"  # one request per connection, as before

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                path = self.path.split("?")[0]
                with outer._lock:
                    fault = outer.script.pop(0) if outer.script else ""
                    outer.requests.append((path, headers, json.loads(raw or b"{}")))
                if fault == "429":
                    return self.send(429, _error(outer.api, "rate_limit"), headers={"retry-after": outer.retry_after})
                if fault in ("500", "401"):
                    return self.send(int(fault), _error(outer.api, fault))
                if fault == "slow":  # longer than the client's timeout
                    time.sleep(1.5)
                if fault == "badjson":
                    return self.send(200, b"<html>upstream proxy error</html>", "text/html")
                try:
                    out = APIS[outer.api](path, headers, json.loads(raw), outer.reply)
                except (ShapeError, KeyError, TypeError, IndexError, json.JSONDecodeError) as exc:
                    return self.send(400, {"error": {"message": f"bad request: {exc}"}})
                self.send(200, out)

        self._handler = Handler
        self._server: HttpServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "use `with FakeAPI(...)`"
        return self._server.url

    def __enter__(self) -> FakeAPI:
        self._server = HttpServer(self._handler, poll_interval=0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.stop()


def _error(api: str, kind: str) -> dict:
    if api == "anthropic":
        return {"type": "error", "error": {"type": f"{kind}_error", "message": kind}}
    if api == "gemini":
        return {"error": {"code": 429 if kind == "rate_limit" else 500, "message": kind, "status": "UNAVAILABLE"}}
    return {"error": {"message": kind, "type": kind}}


def prefers(marker: str) -> Reply:
    """A consistent judge: picks whichever slot holds the dialogue containing `marker`."""

    def reply(prompt: str) -> str:
        a_part = prompt.split("Dialogue A:", 1)[1].split("Dialogue B:", 1)[0]
        winner = "A" if marker in a_part else "B"
        return json.dumps({"winner": winner, "rationale": f"the {marker} one reads better"})

    return reply


def always(winner: str) -> Reply:
    return lambda prompt: json.dumps({"winner": winner, "rationale": "first impression"})
