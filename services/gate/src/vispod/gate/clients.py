"""gRPC clients of the services the gate builds on: generator, metrics, judge (contracts: protos/vispod/v1)."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from vispod.common.grpc_server import client_channel
from vispod.common.settings import GrpcTlsSettings
from vispod.v1 import events_pb2, generator_pb2_grpc, judge_pb2_grpc, metrics_pb2_grpc

# Dialogues are up to a few hundred kB, images travel by URI: the default 4 MB message cap is plenty,
# but a long transcript from a runaway model must not kill the evaluation, so allow more.
_OPTIONS = [("grpc.max_receive_message_length", 32 * 1024 * 1024),
            ("grpc.max_send_message_length", 32 * 1024 * 1024)]

# Judge outcome (system A's view) -> the gate's outcome for side A.
OUTCOME_FOR_A = {
    events_pb2.OUTCOME_A_WINS: "win",
    events_pb2.OUTCOME_B_WINS: "loss",
    events_pb2.OUTCOME_TIE: "tie",
}


def outcome_for_a(outcome: int) -> str:
    return OUTCOME_FOR_A.get(outcome, "invalid")


@dataclass
class Clients:
    """Lazily opened channels to the three services; close() when done."""

    generator_addr: str = ""
    metrics_addr: str = ""
    judge_addr: str = ""
    tls: GrpcTlsSettings | None = None  # TLS (mutual with a client certificate) when it names a CA
    _channels: dict[str, grpc.Channel] = field(default_factory=dict)

    def _channel(self, addr: str, what: str) -> grpc.Channel:
        if not addr:
            raise ValueError(f"no address configured for the {what} service")
        if addr not in self._channels:
            self._channels[addr] = client_channel(addr, self.tls, _OPTIONS)
        return self._channels[addr]

    @property
    def generator(self) -> generator_pb2_grpc.GeneratorServiceStub:
        return generator_pb2_grpc.GeneratorServiceStub(self._channel(self.generator_addr, "generator"))

    @property
    def metrics(self) -> metrics_pb2_grpc.MetricsServiceStub:
        return metrics_pb2_grpc.MetricsServiceStub(self._channel(self.metrics_addr, "metrics"))

    @property
    def judge(self) -> judge_pb2_grpc.JudgeServiceStub:
        return judge_pb2_grpc.JudgeServiceStub(self._channel(self.judge_addr, "judge"))

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
