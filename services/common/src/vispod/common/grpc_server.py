"""gRPC server bootstrap: grpc.health.v1, reflection, a Prometheus interceptor that also maps errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

REQUESTS = Counter("vispod_grpc_requests_total", "gRPC requests by method and status code",
                   ["service", "method", "code"])
LATENCY = Histogram("vispod_grpc_request_seconds", "gRPC request latency", ["service", "method"],
                    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))

Registrar = Callable[[grpc.Server], None]


class InvalidArgument(ValueError):
    """Raised inside a servicer: the call ends with INVALID_ARGUMENT and this message as the reason."""


class _MetricsInterceptor(grpc.ServerInterceptor):
    """Counts and times every call; turns InvalidArgument into INVALID_ARGUMENT, other errors into INTERNAL."""

    def __init__(self, service: str) -> None:
        self.service = service

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method.rsplit("/", 1)[-1]
        service = self.service

        def record(context: grpc.ServicerContext, started: float) -> None:
            code = context.code() if hasattr(context, "code") else None
            name = code.name if isinstance(code, grpc.StatusCode) else "OK"
            REQUESTS.labels(service, method, name).inc()
            LATENCY.labels(service, method).observe(time.monotonic() - started)

        def fail(context: grpc.ServicerContext, exc: Exception) -> None:
            if isinstance(exc, InvalidArgument):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            log.exception("unhandled error in %s", method)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")

        if handler.unary_unary:
            inner = handler.unary_unary

            def unary(request, context):  # type: ignore[no-untyped-def]
                started = time.monotonic()
                try:
                    return inner(request, context)
                except Exception as exc:
                    if _aborted(context):
                        raise
                    fail(context, exc)
                finally:
                    record(context, started)

            return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer,
                                                       handler.response_serializer)
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            def stream(request, context):  # type: ignore[no-untyped-def]
                started = time.monotonic()
                try:
                    yield from inner_stream(request, context)
                except Exception as exc:
                    if _aborted(context):
                        raise
                    fail(context, exc)
                finally:
                    record(context, started)

            return grpc.unary_stream_rpc_method_handler(stream, handler.request_deserializer,
                                                        handler.response_serializer)
        return handler


def _aborted(context: grpc.ServicerContext) -> bool:
    """context.abort() raises a bare Exception after setting the status: such calls pass through untouched."""
    code = context.code() if hasattr(context, "code") else None
    return code is not None and code != grpc.StatusCode.OK


class GrpcServer:
    """A started gRPC server with health and reflection for the given services."""

    def __init__(self, service: str, host: str, port: int, registrars: Sequence[tuple[str, Registrar]],
                 max_workers: int = 8) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers, thread_name_prefix=f"{service}-grpc"),
                                  interceptors=[_MetricsInterceptor(service)],
                                  options=[("grpc.max_receive_message_length", 64 * 1024 * 1024),
                                           ("grpc.max_send_message_length", 64 * 1024 * 1024)])
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [name for name, _ in registrars]
        for _, register in registrars:
            register(self.server)
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server)
        self.names = names
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise RuntimeError(f"cannot bind gRPC to {host}:{port}")

    def start(self) -> None:
        self.server.start()
        self.set_serving(True)

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.names]:
            self.health.set(name, status)

    def stop(self, grace: float) -> None:
        self.set_serving(False)
        self.server.stop(grace).wait(grace + 1)
