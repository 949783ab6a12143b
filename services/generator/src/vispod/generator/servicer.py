"""gRPC GeneratorService: Generate, StreamGenerate (each turn as soon as it is complete), adapter admin."""

from __future__ import annotations

import queue
import threading

import grpc

from vispod.generator.backends.base import BackendUnavailable
from vispod.generator.engine import Generator
from vispod.v1 import generator_pb2, generator_pb2_grpc

_DONE = object()


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    def Generate(self, request: generator_pb2.GenerateRequest, context: grpc.ServicerContext):
        try:
            result = self.generator.generate(request.image_set)
        except BackendUnavailable as exc:
            _unavailable(context, exc)
            return generator_pb2.GenerateResponse()
        return generator_pb2.GenerateResponse(result=result)

    def StreamGenerate(self, request: generator_pb2.GenerateRequest, context: grpc.ServicerContext):
        job = self.generator.prepare(request.image_set)   # bad requests fail before anything is streamed
        chunks: queue.Queue = queue.Queue()
        outcome: list = []

        def work() -> None:
            try:
                outcome.append(self.generator.generate(request.image_set, on_turn=chunks.put, job=job))
            except BaseException as exc:
                outcome.append(exc)
            finally:
                chunks.put(_DONE)

        threading.Thread(target=work, name="stream-generate", daemon=True).start()
        while (item := chunks.get()) is not _DONE:
            yield generator_pb2.GenerateChunk(turn=item)
        result = outcome[0]
        if isinstance(result, BackendUnavailable):
            _unavailable(context, result)
            return
        if isinstance(result, BaseException):
            raise result
        yield generator_pb2.GenerateChunk(result=result)

    def ListAdapters(self, request, context):
        return self.generator.registry.list_adapters()

    def UpdateAdapter(self, request, context):
        return self.generator.registry.update(request, actor="admin")


def _unavailable(context: grpc.ServicerContext, exc: Exception) -> None:
    # set_code rather than abort(): the shared interceptor would turn abort's bare Exception into INTERNAL.
    context.set_code(grpc.StatusCode.UNAVAILABLE)
    context.set_details(str(exc))


def registrar(servicer: GeneratorServicer):
    return "vispod.v1.GeneratorService", lambda server: generator_pb2_grpc.add_GeneratorServiceServicer_to_server(
        servicer, server)
