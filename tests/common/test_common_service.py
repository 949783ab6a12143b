"""The service runtime: health, reflection, error mapping, metrics, ordered shutdown."""

from __future__ import annotations

import threading
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic_settings import SettingsConfigDict

from vispod.common.errors import InvalidArgument, NotFound, Unavailable
from vispod.common.service import GrpcService, Service, ServiceHandle, Task
from vispod.common.settings import ServiceSettings

SERVICE = "vispod.test.Echo"


class EchoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VISPOD_ECHO_", extra="ignore")


def _register(server: grpc.Server) -> None:
    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        if request == b"bad":
            raise InvalidArgument("the request was bad: say something else")
        if request == b"abort":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        if request == b"missing":
            raise NotFound("no such story")
        if request == b"busy":
            raise Unavailable("engine overloaded, try later")
        if request == b"crash":
            raise RuntimeError("kaboom")
        if request.startswith(b"slow"):
            time.sleep(float(request[4:] or 1))
        return request

    handler = grpc.unary_unary_rpc_method_handler(echo, request_deserializer=None, response_serializer=None)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Echo": handler}),))


@pytest.fixture
def service() -> ServiceHandle:
    settings = EchoSettings(service_name="echo", grpc_port=0, metrics_port=0, shutdown_grace_s=5, consume=False)
    handle = Service(settings, grpc=[GrpcService(SERVICE, _register)]).start()
    yield handle
    handle.stop()


def _health(channel: grpc.Channel, name: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status


def test_health_serving_then_not_serving_during_shutdown(service: ServiceHandle) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}")
    echo = channel.unary_unary(f"/{SERVICE}/Echo")
    assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
    assert _health(channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING
    result: list[bytes] = []
    slow = threading.Thread(target=lambda: result.append(echo(b"slow2", timeout=10)))
    slow.start()
    time.sleep(0.3)
    stopper = threading.Thread(target=service.stop)
    stopper.start()
    time.sleep(0.3)
    # In-flight call still running inside the grace period: health already says NOT_SERVING.
    assert _health(channel, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
    slow.join(10)
    stopper.join(15)
    assert result == [b"slow2"], "the in-flight call was not allowed to finish"
    with pytest.raises(grpc.RpcError):
        echo(b"after", timeout=2)


def test_invalid_argument_has_the_reason_and_is_counted(service: ServiceHandle) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}")
    echo = channel.unary_unary(f"/{SERVICE}/Echo")
    with pytest.raises(grpc.RpcError) as err:
        echo(b"bad", timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "say something else" in err.value.details()
    for request, code, reason in ((b"missing", grpc.StatusCode.NOT_FOUND, "no such story"),
                                  (b"busy", grpc.StatusCode.UNAVAILABLE, "engine overloaded, try later")):
        with pytest.raises(grpc.RpcError) as err:
            echo(request, timeout=5)
        assert (err.value.code(), err.value.details()) == (code, reason)
    with pytest.raises(grpc.RpcError) as err:
        echo(b"crash", timeout=5)
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert echo(b"hi", timeout=5) == b"hi"
    body = urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics").read().decode()
    assert 'vispod_grpc_requests_total{code="INVALID_ARGUMENT",method="Echo",service="echo"}' in body
    assert 'vispod_grpc_requests_total{code="OK",method="Echo",service="echo"}' in body
    assert urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/readyz").status == 200


def test_reflection_lists_the_services(service: ServiceHandle) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}")
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


def test_abort_keeps_its_status(service: ServiceHandle) -> None:
    """A servicer's own context.abort() is not turned into INTERNAL by the interceptor."""
    channel = grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}")
    echo = channel.unary_unary(f"/{SERVICE}/Echo")
    with pytest.raises(grpc.RpcError) as err:
        echo(b"abort", timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and err.value.details() == "no such thing"


def test_grpc_service_names_come_from_the_generated_descriptor() -> None:
    from vispod.v1 import generator_pb2, generator_pb2_grpc, voice_pb2_grpc

    class Voice(voice_pb2_grpc.VoiceServiceServicer):
        pass

    class Generator(generator_pb2_grpc.GeneratorServiceServicer):
        pass

    assert GrpcService.of(Voice()).name == "vispod.v1.VoiceService"
    gen = GrpcService.of(Generator(), admin_methods=("UpdateAdapter",))
    assert gen.name == generator_pb2.DESCRIPTOR.services_by_name["GeneratorService"].full_name
    assert gen.admin_methods == ("UpdateAdapter",)
    with pytest.raises(ValueError, match="no method"):
        GrpcService.of(Generator(), admin_methods=("Update",))
    with pytest.raises(TypeError):
        GrpcService.of(object())


def test_one_ordered_shutdown_stops_tasks_then_closes_last_declared_first() -> None:
    """Tasks run in their own thread until told to stop; closers run once, after the tasks, in reverse order."""
    events: list[str] = []
    ticked = threading.Event()

    def loop(stop: threading.Event) -> None:
        while not stop.wait(0.01):
            ticked.set()
        events.append("task stopped")

    settings = EchoSettings(service_name="echo-tasks", grpc_port=0, metrics_port=0, consume=False,
                            shutdown_drain_s=0)
    handle = Service(settings, app="the app", grpc=[GrpcService(SERVICE, _register)], tasks=[Task("tick", loop)],
                     closers=[lambda: events.append("backend"), lambda: events.append("publisher")]).start()
    assert handle.app == "the app" and ticked.wait(5) and handle.ready()
    handle.stop()
    handle.stop()  # idempotent
    assert events == ["task stopped", "publisher", "backend"]
    assert not handle.ready()


def test_a_crashed_task_stops_the_service() -> None:
    def crash(_stop: threading.Event) -> None:
        raise RuntimeError("task crashed")

    settings = EchoSettings(service_name="echo-crash", grpc_port=0, metrics_port=0, consume=False,
                            shutdown_drain_s=0)
    handle = Service(settings, tasks=[Task("crash", crash)]).start()
    done = threading.Thread(target=handle.wait, daemon=True)
    done.start()
    done.join(10)
    assert not done.is_alive(), "the service did not stop after its task crashed"


def test_image_healthcheck_reads_readyz_on_the_services_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from vispod.common import healthcheck

    settings = EchoSettings(service_name="echo-health", grpc_port=0, metrics_port=0, consume=False,
                            shutdown_drain_s=0)
    handle = Service(settings).start()
    monkeypatch.setenv("VISPOD_ECHO_METRICS_PORT", str(handle.metrics_port))
    assert healthcheck.ready("echo")
    handle.metrics.stop()  # what a hung or exited service looks like from outside
    assert not healthcheck.ready("echo", timeout=1)
    handle.stop()


def test_bind_host_is_loopback_unless_the_image_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EchoSettings().grpc_host == "127.0.0.1" == EchoSettings().metrics_host
    monkeypatch.setenv("VISPOD_BIND_HOST", "0.0.0.0")
    assert EchoSettings().grpc_host == "0.0.0.0" == EchoSettings().metrics_host
    monkeypatch.setenv("VISPOD_ECHO_GRPC_HOST", "127.0.0.2")
    assert EchoSettings().grpc_host == "127.0.0.2"
