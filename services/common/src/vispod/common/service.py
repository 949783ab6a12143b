"""The one shape of a vispod service, and the runtime that runs it.

A service declares what it is made of in a `Service`: its gRPC servicers, Kafka consumers, background
tasks and things to close. The runtime starts them, serves health (grpc.health.v1 and /healthz, /readyz)
and Prometheus metrics, and stops them in one ordered shutdown on SIGTERM/SIGINT, a crashed consumer or
task, or `ServiceHandle.stop()`: health NOT_SERVING; consumers stop polling, finish, flush and commit their
batch; tasks are told to stop; gRPC stops with a grace period for in-flight calls; the service's own
resources close (last declared, first closed); then the metrics endpoint stops.

Each service package has `build(settings, ...) -> Service` and a `__main__` that calls `serve(Settings, build)`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from vispod.common.bus import EventConsumer
from vispod.common.grpc_server import GrpcServer, GrpcService
from vispod.common.logging import configure_logging
from vispod.common.metrics_http import MetricsServer
from vispod.common.settings import ServiceSettings, load_settings

log = logging.getLogger(__name__)

__all__ = ["GrpcService", "Service", "ServiceHandle", "Task", "serve"]

AppT = TypeVar("AppT")
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass(frozen=True)
class Task:
    """A background loop the runtime runs in its own thread: `run(stop)` returns soon after `stop` is set."""

    name: str
    run: Callable[[threading.Event], None]


@dataclass
class Service(Generic[AppT]):
    """What one service is made of. `app` holds the service's own objects, for tests and tools."""

    settings: ServiceSettings
    app: AppT = None  # type: ignore[assignment]
    grpc: Sequence[GrpcService] = ()
    consumers: Sequence[EventConsumer] = ()
    tasks: Sequence[Task] = ()
    # Closed once, after gRPC stops, last first (a backend, publishers, clients).
    closers: Sequence[Callable[[], object]] = ()

    def start(self) -> ServiceHandle[AppT]:
        """Starts everything and returns at once (in-process: tests, benchmarks, `vispod eval`)."""
        return ServiceHandle(self)

    def run(self) -> None:
        """Blocks until SIGTERM/SIGINT (or a crashed consumer or task), then shuts down in order."""
        stop_requested = threading.Event()

        def on_signal(signum: int, _frame: object) -> None:
            log.info("signal received", extra={"signal": signal.Signals(signum).name})
            stop_requested.set()

        # Handlers first: a SIGTERM that arrives during start-up still shuts down in order.
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        handle = self.start()
        print(f"{self.settings.service_name}: grpc 127.0.0.1:{handle.grpc_port} metrics "
              f"http://127.0.0.1:{handle.metrics_port}/metrics", flush=True)
        threading.Thread(target=lambda: (stop_requested.wait(), handle.stop()), name="shutdown", daemon=True).start()
        handle.wait()


class ServiceHandle(Generic[AppT]):
    """A running service: its ports, readiness, and the one ordered way to stop it."""

    def __init__(self, service: Service[AppT]) -> None:
        self.service = service
        self.settings = s = service.settings
        self.consumers = list(service.consumers) if s.consume else []
        self.grpc = (GrpcServer(s.service_name, s.grpc_host, s.grpc_port, service.grpc, s.grpc_max_workers,
                                s.grpc_tls) if service.grpc else None)
        self.metrics = MetricsServer(s.metrics_host, s.metrics_port, self.ready)
        self._task_stop = threading.Event()
        self._stopped = threading.Event()
        self._done = threading.Event()
        self.threads: list[threading.Thread] = []
        self.metrics.start()
        for consumer in self.consumers:
            self._spawn(f"consumer-{consumer.group_id}", consumer.run)
        for task in service.tasks:
            self._spawn(f"task-{task.name}", lambda task=task: task.run(self._task_stop))
        if self.grpc:
            self.grpc.start()
        log.info("service started", extra={"grpc_port": self.grpc_port, "metrics_port": self.metrics_port,
                                           "consumers": [c.topics for c in self.consumers],
                                           "tasks": [t.name for t in service.tasks]})

    @property
    def app(self) -> AppT:
        return self.service.app

    @property
    def grpc_port(self) -> int:
        return self.grpc.port if self.grpc else 0

    @property
    def metrics_port(self) -> int:
        return self.metrics.port

    def ready(self) -> bool:
        return not self._stopped.is_set() and all(c.healthy for c in self.consumers)

    def _spawn(self, name: str, target: Callable[[], object]) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception:
                log.exception("%s crashed; stopping the service so the orchestrator restarts it", name)
                threading.Thread(target=self.stop, daemon=True).start()

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        log.info("shutting down")
        s = self.settings
        drain_until = time.monotonic() + s.shutdown_drain_s
        if self.grpc:
            self.grpc.set_serving(False)
        for consumer in self.consumers:
            consumer.stop()
        self._task_stop.set()
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(s.kafka.max_poll_interval_ms / 1000)
        if self.grpc:
            time.sleep(max(0.0, drain_until - time.monotonic()))
            self.grpc.stop(s.shutdown_grace_s)
        for close in reversed(self.service.closers):
            try:
                close()
            except Exception:
                log.exception("closing %r failed", close)
        self.metrics.stop()
        log.info("stopped")
        self._done.set()

    def wait(self) -> None:
        """Returns once the service has stopped completely."""
        self._done.wait()


def serve(settings_cls: type[SettingsT], build: Callable[[SettingsT], Service[Any]]) -> None:
    """A service process (`python -m vispod.<service>`): settings, logging (once), build, run."""
    settings = load_settings(settings_cls)
    configure_logging(settings.service_name, settings.log_level)
    build(settings).run()
