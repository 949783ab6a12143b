"""gRPC server bootstrap: grpc.health.v1, reflection, a Prometheus interceptor that also maps errors,
TLS (mutual when a client CA is configured) and an identity check on admin RPCs; client channels."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram

from vispod.common.errors import Status, VispodError
from vispod.common.settings import GrpcTlsSettings

log = logging.getLogger(__name__)

__all__ = ["GRPC_CODES", "GrpcServer", "GrpcService", "admin_denial", "client_channel"]

REQUESTS = Counter("vispod_grpc_requests_total", "gRPC requests by method and status code",
                   ["service", "method", "code"])
LATENCY = Histogram("vispod_grpc_request_seconds", "gRPC request latency", ["service", "method"],
                    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))

_IDENTITY_KEYS = ("x509_common_name", "x509_subject_alternative_name")


# The one place a vispod error status becomes a gRPC status code.
GRPC_CODES = {status: getattr(grpc.StatusCode, status.name) for status in Status}

def caller_identities(context: grpc.ServicerContext) -> set[str]:
    """Names (CN, SANs) in the client certificate the TLS handshake verified; empty without one."""
    auth = context.auth_context() or {}
    return {v.decode() if isinstance(v, bytes) else str(v) for key in _IDENTITY_KEYS for v in auth.get(key, [])}


def admin_denial(context: grpc.ServicerContext, tls: GrpcTlsSettings) -> str | None:
    """Why this caller may not call an admin RPC; None when it may (see GrpcTlsSettings)."""
    if tls.mutual:
        ids = caller_identities(context)
        if ids & set(tls.admin_identities):
            return None
        return f"client {sorted(ids)} is not in VISPOD_GRPC_TLS_ADMIN_IDENTITIES"
    if tls.admin_open_without_mtls:
        return None
    return ("admin RPCs need mutual TLS (VISPOD_GRPC_TLS_CA_FILE) and an allowed client identity "
            "(or, for local development only, VISPOD_GRPC_TLS_ADMIN_OPEN_WITHOUT_MTLS=true)")


@dataclass(frozen=True)
class GrpcService:
    """One gRPC service of a process: its full name, how to add it to a server, its admin methods."""

    name: str
    register: Callable[[grpc.Server], None]
    admin_methods: Collection[str] = ()

    @classmethod
    def of(cls, servicer: object, admin_methods: Collection[str] = ()) -> GrpcService:
        """For a servicer of a generated `*_pb2_grpc.<Name>Servicer`: the name comes from the generated
        descriptor (`*_pb2.DESCRIPTOR.services_by_name`), and so does the check that admin methods exist."""
        base = next((b for b in type(servicer).__mro__ if b.__module__.endswith("_pb2_grpc")), None)
        if base is None or not base.__name__.endswith("Servicer"):
            raise TypeError(f"{type(servicer).__name__} does not subclass a generated *Servicer")
        stubs = sys.modules[base.__module__]
        messages = sys.modules[base.__module__.removesuffix("_grpc")]
        descriptor = messages.DESCRIPTOR.services_by_name[base.__name__.removesuffix("Servicer")]
        unknown = set(admin_methods) - set(descriptor.methods_by_name)
        if unknown:
            raise ValueError(f"{descriptor.full_name} has no method(s) {sorted(unknown)}")
        add = getattr(stubs, f"add_{base.__name__}_to_server")
        return cls(descriptor.full_name, lambda server: add(servicer, server), tuple(admin_methods))


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path else None


def client_channel(address: str, tls: GrpcTlsSettings | None = None,
                   options: Sequence[tuple[str, object]] = ()) -> grpc.Channel:
    """A channel to a vispod service: TLS trusting `tls.ca_file` (presenting `cert_file` for mutual TLS)
    when a CA is configured, else plaintext."""
    if tls is None or tls.ca_file is None:
        return grpc.insecure_channel(address, options=list(options))
    creds = grpc.ssl_channel_credentials(root_certificates=_read(tls.ca_file), private_key=_read(tls.key_file),
                                         certificate_chain=_read(tls.cert_file))
    return grpc.secure_channel(address, creds, options=list(options))


class _MetricsInterceptor(grpc.ServerInterceptor):
    """Counts and times every call; turns a VispodError into its status code, other errors into INTERNAL;
    refuses admin methods to callers `admin_denial` turns away (PERMISSION_DENIED)."""

    def __init__(self, service: str, admin_methods: Collection[str] = (),
                 tls: GrpcTlsSettings | None = None) -> None:
        self.service = service
        self.admin_methods = frozenset(admin_methods)
        self.tls = tls or GrpcTlsSettings()

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method.rsplit("/", 1)[-1]
        service = self.service
        admin = handler_call_details.method in self.admin_methods
        tls = self.tls

        def record(context: grpc.ServicerContext, started: float) -> None:
            code = context.code() if hasattr(context, "code") else None
            name = code.name if isinstance(code, grpc.StatusCode) else "OK"
            REQUESTS.labels(service, method, name).inc()
            LATENCY.labels(service, method).observe(time.monotonic() - started)

        def fail(context: grpc.ServicerContext, exc: Exception) -> None:
            if isinstance(exc, VispodError) and exc.status is not Status.INTERNAL:
                # The caller's input was refused (an image outside the allow-lists, over a limit…): say why.
                log.info("request refused", extra={"method": method, "code": GRPC_CODES[exc.status].name,
                                                   "reason": str(exc)[:500]})
                context.abort(GRPC_CODES[exc.status], str(exc))
            log.exception("unhandled error in %s", method)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")

        @contextlib.contextmanager
        def call(context: grpc.ServicerContext) -> Iterator[None]:
            started = time.monotonic()
            try:
                if admin and (denied := admin_denial(context, tls)):
                    log.warning("admin RPC refused", extra={"method": method, "reason": denied})
                    context.abort(grpc.StatusCode.PERMISSION_DENIED, denied)
                yield
            except Exception as exc:
                if _aborted(context):
                    raise
                fail(context, exc)
            finally:
                record(context, started)

        if handler.unary_unary:
            inner = handler.unary_unary

            def unary(request, context):  # type: ignore[no-untyped-def]
                with call(context):
                    return inner(request, context)

            return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer,
                                                       handler.response_serializer)
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            def stream(request, context):  # type: ignore[no-untyped-def]
                with call(context):
                    yield from inner_stream(request, context)

            return grpc.unary_stream_rpc_method_handler(stream, handler.request_deserializer,
                                                        handler.response_serializer)
        return handler


def _aborted(context: grpc.ServicerContext) -> bool:
    """context.abort() raises a bare Exception after setting the status: such calls pass through untouched."""
    code = context.code() if hasattr(context, "code") else None
    return code is not None and code != grpc.StatusCode.OK


class GrpcServer:
    """A started gRPC server with health and reflection for the given services."""

    def __init__(self, service: str, host: str, port: int, services: Sequence[GrpcService],
                 max_workers: int = 8, tls: GrpcTlsSettings | None = None) -> None:
        tls = tls or GrpcTlsSettings()
        admin = {f"/{svc.name}/{m}" for svc in services for m in svc.admin_methods}
        if admin and not tls.mutual and tls.admin_open_without_mtls:
            log.warning("admin RPCs are OPEN to any caller that reaches the port: "
                        "VISPOD_GRPC_TLS_ADMIN_OPEN_WITHOUT_MTLS=true and no mutual TLS (local development only)",
                        extra={"methods": sorted(admin), "host": host, "port": port})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers, thread_name_prefix=f"{service}-grpc"),
                                  interceptors=[_MetricsInterceptor(service, admin, tls)],
                                  options=[("grpc.max_receive_message_length", 64 * 1024 * 1024),
                                           ("grpc.max_send_message_length", 64 * 1024 * 1024)])
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [svc.name for svc in services]
        for svc in services:
            svc.register(self.server)
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server)
        self.names = names
        if tls.enabled:
            creds = grpc.ssl_server_credentials([(_read(tls.key_file), _read(tls.cert_file))],
                                                root_certificates=_read(tls.ca_file),
                                                require_client_auth=tls.mutual and tls.require_client_cert)
            self.port = self.server.add_secure_port(f"{host}:{port}", creds)
        else:
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
