"""The lifecycle an engine follows, read from the generator (its registry replays the signed lifecycle topic)."""

from __future__ import annotations

import grpc

from vispod.common.adapter_store.retention import LifecycleView
from vispod.common.grpc_server import client_channel
from vispod.common.settings import GrpcTlsSettings
from vispod.v1 import events_pb2, generator_pb2, generator_pb2_grpc


class LifecycleUnavailable(RuntimeError):
    """The lifecycle could not be read: the engine keeps what it holds and loads nothing new."""


def view_of(listing: generator_pb2.ListAdaptersResponse) -> LifecycleView:
    states = {a.adapter_id: events_pb2.AdapterState.Name(a.state).removeprefix("ADAPTER_STATE_")
              for a in listing.adapters}
    return LifecycleView(states, listing.previous_active_adapter_id)


class GeneratorLifecycle:
    """ListAdapters on the generator (any replica: each replays the same compacted topics)."""

    def __init__(self, address: str, tls: GrpcTlsSettings | None = None, timeout_s: float = 10.0) -> None:
        self._channel = client_channel(address, tls)
        self._stub = generator_pb2_grpc.GeneratorServiceStub(self._channel)
        self.timeout_s = timeout_s

    def __call__(self) -> LifecycleView:
        try:
            return view_of(self._stub.ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=self.timeout_s))
        except grpc.RpcError as exc:
            raise LifecycleUnavailable(f"generator ListAdapters: {exc.code().name}") from exc

    def close(self) -> None:
        self._channel.close()
