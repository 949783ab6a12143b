"""Real gRPC servers on 127.0.0.1 implementing the generator, metrics and judge contracts with scripted answers,
so the gate and `vispod eval` can be tested on their own (the real services are used in test_gate_full_loop.py).
`servers` is their fixture, and `builtin_set` the gate's synthetic evaluation set (both imported by the gate's and
the evaluation's conftest)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from vispod.gate.evalset import write_builtin_set
from vispod.v1 import (
    common_pb2,
    events_pb2,
    generator_pb2,
    generator_pb2_grpc,
    judge_pb2,
    judge_pb2_grpc,
    metrics_pb2,
    metrics_pb2_grpc,
)

S = events_pb2.AdapterState
Action = generator_pb2.UpdateAdapterRequest.Action


def dialogue_for(adapter: str) -> str:
    return (f"Speaker 1: This is {adapter} talking about the beach and the waves.\n\n"
            f"Speaker 2: And {adapter} again, about the sand castle and the dog.\n")


@dataclass
class ScriptedGenerator(generator_pb2_grpc.GeneratorServiceServicer):
    states: dict[str, int] = field(default_factory=dict)
    active: str = ""
    failing: set[str] = field(default_factory=set)  # adapters whose generations come back FAILED
    unservable: set[str] = field(default_factory=set)  # registered, but no engine holds them (yet)
    generated: list[str] = field(default_factory=list)
    updates: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, adapter_id: str, state: int = S.ADAPTER_STATE_CANDIDATE) -> None:
        with self.lock:
            self.states[adapter_id] = state
            if state == S.ADAPTER_STATE_ACTIVE:
                self.active = adapter_id

    def Generate(self, request, context):
        adapter = request.image_set.adapter or self.active or "base"
        with self.lock:
            self.generated.append(adapter)
        if adapter in self.failing:
            return generator_pb2.GenerateResponse(result=events_pb2.DialogueGenerated(
                status=common_pb2.STATUS_FAILED, error="malformed output", adapter_id=adapter))
        turns = [common_pb2.Turn(speaker="Speaker 1", text=f"{adapter} speaks", image_refs=[0])]
        return generator_pb2.GenerateResponse(result=events_pb2.DialogueGenerated(
            image_set_id=request.image_set.image_set_id, status=common_pb2.STATUS_OK, adapter_id=adapter,
            dialogue=common_pb2.Dialogue(text=dialogue_for(adapter), turns=turns), system=f"scripted@{adapter}",
            images=request.image_set.images))

    def ListAdapters(self, request, context):
        with self.lock:
            return generator_pb2.ListAdaptersResponse(
                adapters=[generator_pb2.AdapterInfo(adapter_id=a, state=s, servable=a not in self.unservable)
                          for a, s in self.states.items()],
                active_adapter_id=self.active)

    def UpdateAdapter(self, request, context):
        with self.lock:
            self.updates.append((request.adapter_id, Action.Name(request.action)))
            if request.adapter_id not in self.states:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown adapter {request.adapter_id}")
            if request.action == Action.ACTION_PROMOTE:
                if self.active:
                    self.states[self.active] = S.ADAPTER_STATE_RETIRED
                self.states[request.adapter_id] = S.ADAPTER_STATE_ACTIVE
                self.active = request.adapter_id
            elif request.action == Action.ACTION_CANARY:
                self.states[request.adapter_id] = S.ADAPTER_STATE_CANARY
            elif request.action == Action.ACTION_REJECT:
                self.states[request.adapter_id] = S.ADAPTER_STATE_REJECTED
            elif request.action == Action.ACTION_ROLLBACK:
                self.states[request.adapter_id] = S.ADAPTER_STATE_CANDIDATE
            return generator_pb2.AdapterInfo(adapter_id=request.adapter_id, state=self.states[request.adapter_id])


@dataclass
class ScriptedMetrics(metrics_pb2_grpc.MetricsServiceServicer):
    """CLIPScore (and hallucination rate) by which adapter wrote the dialogue (its name is in the text)."""

    clipscore: dict[str, float] = field(default_factory=dict)
    default: float = 20.0
    # hallucination rate by adapter (its name in the text); unset section when the adapter is not named
    hallucination: dict[str, float] = field(default_factory=dict)
    calls: int = 0
    repetition: dict[str, float] = field(default_factory=dict)   # repeated-4-gram rate by adapter, the same way
    grounding: bool = True  # False: no CLIP weights (the CPU cluster), the grounding section is unset

    def Score(self, request, context):
        self.calls += 1
        text = request.generated.dialogue.text
        score = next((v for k, v in self.clipscore.items() if k in text), self.default)
        hallucinated = next((v for k, v in self.hallucination.items() if k in text), None)
        rate = next((v for k, v in self.repetition.items() if k in text), 0.0)
        return metrics_pb2.ScoreResponse(result=events_pb2.MetricsComputed(
            style=common_pb2.StyleMetrics(words=len(text.split()), num_turns=2, repeated_4gram_rate=rate),
            paper_style=common_pb2.StyleMetrics(words=len(text.split()), num_turns=2),
            grounding=common_pb2.GroundingMetrics(clipscore=score, clip_model="scripted", random_weights=True)
            if self.grounding else None,
            format=common_pb2.FormatMetrics(valid=True, num_speakers=2, num_turns=2),
            hallucination=None if hallucinated is None else common_pb2.HallucinationMetrics(mentions=10,
                                                                                  rate=hallucinated)))


@dataclass
class ScriptedJudge(judge_pb2_grpc.JudgeServiceServicer):
    """Every compare: one verdict per judge in `judges` with `outcome` (cycled per call when a list)."""

    outcomes: list[int] = field(default_factory=lambda: [events_pb2.OUTCOME_A_WINS])
    judges: tuple[str, ...] = ("j1", "j2", "j3", "j4")
    requests: list[judge_pb2.CompareRequest] = field(default_factory=list)

    def Compare(self, request, context):
        self.requests.append(request)
        outcome = self.outcomes[(len(self.requests) - 1) % len(self.outcomes)]
        criteria = list(request.criteria) or ["naturalness"]
        return judge_pb2.CompareResponse(result=events_pb2.JudgementCompleted(verdicts=[
            events_pb2.Verdict(judge=j, criterion=c, outcome=outcome, outcome_ab=outcome, outcome_ba=outcome)
            for j in self.judges for c in criteria]))


class Servers:
    """Each servicer on its own real gRPC server (an ephemeral port on 127.0.0.1)."""

    def __init__(self) -> None:
        self._servers: list[grpc.Server] = []

    def serve(self, servicer: object) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        if isinstance(servicer, generator_pb2_grpc.GeneratorServiceServicer):
            generator_pb2_grpc.add_GeneratorServiceServicer_to_server(servicer, server)
        elif isinstance(servicer, metrics_pb2_grpc.MetricsServiceServicer):
            metrics_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, server)
        else:
            judge_pb2_grpc.add_JudgeServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._servers.append(server)
        return f"127.0.0.1:{port}"

    def stop(self) -> None:
        for server in self._servers:
            server.stop(0)


@pytest.fixture
def builtin_set(tmp_path: Path) -> Path:
    return write_builtin_set(tmp_path / "evalset")


@pytest.fixture
def servers() -> Iterator[Servers]:
    """The scripted generator, metrics and judge services, stopped after the test."""
    s = Servers()
    yield s
    s.stop()
