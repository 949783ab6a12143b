"""Runs one service: metrics HTTP, gRPC (health, reflection, metrics) and Kafka consumers, with ordered shutdown.

Shutdown on SIGTERM/SIGINT: health NOT_SERVING, consumers stop polling and finish, flush and commit
their batch, gRPC stops with a grace period for in-flight calls, then the metrics endpoint stops.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from vispod.common.bus import EventConsumer
from vispod.common.grpc_server import GrpcServer, ServiceEntry
from vispod.common.logging import configure_logging
from vispod.common.metrics_http import MetricsServer
from vispod.common.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass
class ServiceHandle:
    """A running service (in-process): its ports and how to stop it."""

    settings: ServiceSettings
    grpc: GrpcServer | None
    metrics: MetricsServer
    consumers: Sequence[EventConsumer]
    threads: list[threading.Thread] = field(default_factory=list)
    _stopped: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)

    @property
    def grpc_port(self) -> int:
        return self.grpc.port if self.grpc else 0

    @property
    def metrics_port(self) -> int:
        return self.metrics.port

    def ready(self) -> bool:
        return not self._stopped.is_set() and all(c.healthy for c in self.consumers)

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        log.info("shutting down")
        drain_until = time.monotonic() + self.settings.shutdown_drain_s
        if self.grpc:
            self.grpc.set_serving(False)
        for consumer in self.consumers:
            consumer.stop()
        for thread in self.threads:
            thread.join(self.settings.kafka.max_poll_interval_ms / 1000)
        if self.grpc:
            time.sleep(max(0.0, drain_until - time.monotonic()))
            self.grpc.stop(self.settings.shutdown_grace_s)
        self.metrics.stop()
        log.info("stopped")
        self._done.set()

    def wait(self) -> None:
        """Returns once the service has stopped completely."""
        self._done.wait()


def start_service(settings: ServiceSettings, *, grpc_services: Sequence[ServiceEntry] = (),
                  consumers: Sequence[EventConsumer] = ()) -> ServiceHandle:
    """Starts everything and returns at once (used in-process by tests and by run_service)."""
    grpc_server = None
    if grpc_services:
        grpc_server = GrpcServer(settings.service_name, settings.grpc_host, settings.grpc_port, grpc_services,
                                 settings.grpc_max_workers, settings.grpc_tls)
    handle_ref: list[ServiceHandle] = []
    metrics = MetricsServer(settings.metrics_host, settings.metrics_port, lambda: handle_ref[0].ready())
    active = list(consumers) if settings.consume else []
    handle = ServiceHandle(settings, grpc_server, metrics, active)
    handle_ref.append(handle)
    metrics.start()
    for consumer in active:
        thread = threading.Thread(target=_run_consumer, args=(consumer, handle), name=f"consumer-{consumer.group_id}",
                                  daemon=True)
        thread.start()
        handle.threads.append(thread)
    if grpc_server:
        grpc_server.start()
    log.info("service started", extra={"grpc_port": handle.grpc_port, "metrics_port": handle.metrics_port,
                                       "consumers": [c.topics for c in active]})
    return handle


def _run_consumer(consumer: EventConsumer, handle: ServiceHandle) -> None:
    try:
        consumer.run()
    except Exception:
        log.exception("consumer crashed; stopping the service so the orchestrator restarts it")
        threading.Thread(target=handle.stop, daemon=True).start()


def run_service(settings: ServiceSettings, *, grpc_services: Sequence[ServiceEntry] = (),
                consumers: Sequence[EventConsumer] = ()) -> None:
    """Blocks until SIGTERM/SIGINT (or a consumer crash), then shuts down in order."""
    configure_logging(settings.service_name, settings.log_level)
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        stop_requested.set()

    # Handlers first: a SIGTERM that arrives during start-up still shuts down in order.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    handle = start_service(settings, grpc_services=grpc_services, consumers=consumers)
    print(f"{settings.service_name}: grpc 127.0.0.1:{handle.grpc_port} metrics "
          f"http://127.0.0.1:{handle.metrics_port}/metrics", flush=True)
    threading.Thread(target=lambda: (stop_requested.wait(), handle.stop()), name="shutdown", daemon=True).start()
    handle.wait()
