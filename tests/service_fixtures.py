"""Helpers for fixtures (`yield from` them): a service on the real broker, a gRPC stub to it, a local HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

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


def serve_http(handler: type[BaseHTTPRequestHandler], daemon_threads: bool = False) -> Iterator[int]:
    """Serves `handler` on 127.0.0.1 at a free port from a thread; yields the port; shuts the server down after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = daemon_threads
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
