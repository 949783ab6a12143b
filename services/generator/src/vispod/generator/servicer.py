"""gRPC GeneratorService: Generate, StreamGenerate (each turn as soon as it is complete), adapter admin."""

from __future__ import annotations

import queue
import threading

import grpc

from vispod.common.grpc_server import GrpcService
from vispod.generator.engine import GenerationCancelled, Generator
from vispod.v1 import generator_pb2, generator_pb2_grpc

_DONE = object()


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    # A failed generation raises: BackendUnavailable and the other vispod errors get their status code from the
    # shared interceptor (vispod.common.grpc_server), as in every service.
    def Generate(self, request: generator_pb2.GenerateRequest, context: grpc.ServicerContext):
        gone = _caller_gone(context)
        try:
            result = self.generator.generate(request.image_set, cancelled=gone.is_set)
        except GenerationCancelled:
            context.set_code(grpc.StatusCode.CANCELLED)
            return generator_pb2.GenerateResponse()
        return generator_pb2.GenerateResponse(result=result)

    def StreamGenerate(self, request: generator_pb2.GenerateRequest, context: grpc.ServicerContext):
        job = self.generator.prepare(request.image_set)   # bad requests fail before anything is streamed
        chunks: queue.Queue = queue.Queue()
        outcome: list = []
        gone = _caller_gone(context)

        def attempt(n: int, reason: str) -> None:
            chunks.put(generator_pb2.GenerateChunk(attempt=generator_pb2.AttemptStarted(attempt=n, reason=reason)))

        def work() -> None:
            try:
                outcome.append(self.generator.generate(
                    request.image_set, on_turn=lambda t: chunks.put(generator_pb2.GenerateChunk(turn=t)), job=job,
                    on_attempt=attempt, cancelled=gone.is_set))
            except BaseException as exc:
                outcome.append(exc)
            finally:
                chunks.put(_DONE)

        threading.Thread(target=work, name="stream-generate", daemon=True).start()
        try:
            while (item := chunks.get()) is not _DONE:
                yield item
        finally:
            gone.set()  # the client stopped reading (cancel, deadline): stop the worker too
        result = outcome[0]
        if isinstance(result, GenerationCancelled):
            context.set_code(grpc.StatusCode.CANCELLED)
            return
        if isinstance(result, BaseException):
            raise result
        yield generator_pb2.GenerateChunk(result=result)

    def ListAdapters(self, request, context):
        return self.generator.registry.list_adapters()

    def UpdateAdapter(self, request, context):
        return self.generator.registry.update(request, actor="admin")


def _caller_gone(context: grpc.ServicerContext) -> threading.Event:
    """Set when the RPC ends for any reason: a cancelled or timed-out client stops the generation."""
    gone = threading.Event()
    context.add_callback(gone.set)
    return gone


# Methods that change what is served: only callers with an admin identity (vispod.common.grpc_server).
ADMIN_METHODS = ("UpdateAdapter",)


def grpc_service(servicer: GeneratorServicer) -> GrpcService:
    return GrpcService.of(servicer, ADMIN_METHODS)
