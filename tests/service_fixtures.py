"""Helpers for fixtures (`yield from` them): a service on the real broker, a gRPC stub to it, a local HTTP server,
and the quiet JSON/SSE request handler the fake engines build on."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import grpc

from vispod.common.service import ServiceHandle

StubT = TypeVar("StubT")


def running(handle: ServiceHandle, timeout: float = 60) -> Iterator[ServiceHandle]:
    """Yields a started service once its consumers poll; stops it after (`yield from` in a fixture)."""
    for consumer in handle.consumers:
        assert consumer.wait_running(timeout)
    yield handle
    handle.stop()


def grpc_stub(handle: ServiceHandle, stub: Callable[[grpc.Channel], StubT]) -> Iterator[StubT]:
    """Yields a stub on an insecure channel to the service's gRPC port; closes the channel after."""
    with grpc.insecure_channel(f"127.0.0.1:{handle.grpc_port}") as channel:
        yield stub(channel)


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet HTTP/1.1 handler for fake engines: reads a JSON body, answers bytes, JSON or server-sent events."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: without TCP_NODELAY each keep-alive answer waits ~40 ms for the
    # client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def read_json(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")

    def send(self, status: int, body: object, ctype: str = "application/json",
             headers: dict[str, str] | None = None) -> None:
        """Sends `body` (bytes as they are, anything else as JSON) with a Content-Length; a client that already
        left (timed out) is let go."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def send_sse(self, events: Iterable[object]) -> None:
        """Sends each event as an SSE `data:` line, then `data: [DONE]`, in one body."""
        text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        self.send(200, text.encode(), "text/event-stream")


class HttpServer:
    """Serves a handler on 127.0.0.1 at a free port from a thread until `stop()`. With daemon request threads (the
    ThreadingHTTPServer default) `stop()` does not wait for keep-alive connections a client left open."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], daemon_threads: bool = True,
                 poll_interval: float = 0.5) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = daemon_threads
        self.port: int = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve_http(handler: type[BaseHTTPRequestHandler], daemon_threads: bool = False) -> Iterator[int]:
    """Serves `handler` on 127.0.0.1 at a free port from a thread; yields the port; shuts the server down after."""
    server = HttpServer(handler, daemon_threads)
    yield server.port
    server.stop()
