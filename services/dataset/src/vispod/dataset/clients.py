"""How the builder gets images for a batch of SynthesisRequested events: in process, or through the bus.

Both return, per request id, the PNG bytes in prompt order plus the model name and the random-weights
flag, so the rest of the build does not know which one ran.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vispod.common import events
from vispod.common.bus import EventPublisher, EventReader
from vispod.common.errors import InvalidArgument
from vispod.common.images import ImageFetcher
from vispod.common.settings import ImageAccessSettings, KafkaSettings
from vispod.common.topics import Topic, dlq_topic
from vispod.synth.engine import Synthesizer
from vispod.v1 import common_pb2, events_pb2


class SynthesisError(RuntimeError):
    """A request failed, was dead-lettered, or got no answer in time; the message says which and why."""


@dataclass(frozen=True)
class SynthOutcome:
    images: list[bytes]
    model: str
    random_weights: bool


class SynthClient(Protocol):
    mode: str

    def run(self, requests: Sequence[events_pb2.SynthesisRequested]) -> dict[str, SynthOutcome]: ...

    def close(self) -> None: ...


class LocalSynthClient:
    """Runs the synth engine in this process (Synthesizer.draw: the service's validation, seeds and counters)."""

    mode = "local"

    def __init__(self, synthesizer: Synthesizer) -> None:
        self.synth = synthesizer

    def run(self, requests: Sequence[events_pb2.SynthesisRequested]) -> dict[str, SynthOutcome]:
        out = {}
        for msg in requests:
            try:
                rendered = self.synth.draw(msg, "local")
            except InvalidArgument as exc:
                raise SynthesisError(f"request {msg.request_id} refused: {exc}") from exc
            out[msg.request_id] = SynthOutcome([r.png for r in rendered], self.synth.model, self.synth.random_weights)
        return out

    def close(self) -> None:
        pass


class KafkaSynthClient:
    """Publishes SynthesisRequested and waits for SynthesisCompleted (or a dead letter) by request id.

    Images are read back from the synth service's artifact store by URI (file:// under `artifact_roots`,
    sha256 checked), so builder and service must share that storage.
    """

    mode = "kafka"

    def __init__(self, kafka: KafkaSettings, artifact_roots: Sequence[Path], timeout_s: float = 600.0) -> None:
        self.timeout_s = timeout_s
        self._dlq = dlq_topic("synth", kafka.topic_prefix)
        # Positioned at the end before anything is published: only answers to this run's requests are read.
        self._reader = EventReader(kafka, [Topic.SYNTHESIS_COMPLETED, self._dlq], from_beginning=False)
        self._publisher = EventPublisher(kafka, "dataset-builder")
        self._topic = Topic.SYNTHESIS_REQUESTED
        self._fetcher = ImageFetcher(ImageAccessSettings(file_roots=list(artifact_roots), max_pixels=64_000_000))

    def run(self, requests: Sequence[events_pb2.SynthesisRequested]) -> dict[str, SynthOutcome]:
        pending = {m.request_id: m for m in requests}
        for msg in requests:
            # A fresh event id each time: a rerun must not be swallowed by the consumer's duplicate filter.
            self._publisher.publish(self._topic, msg)
        done: dict[str, events_pb2.SynthesisCompleted] = {}

        def request_id_of(env: events.Envelope) -> str:
            msg = env.message
            if isinstance(msg, events_pb2.SynthesisCompleted):
                return msg.request_id
            if isinstance(msg, events_pb2.DeadLetter):
                try:
                    inner = events.decode(msg.payload, [(h.key, h.value) for h in msg.headers])
                except events.EventDecodeError:
                    return ""
                return getattr(inner.message, "request_id", "")
            return ""

        deadline = time.monotonic() + self.timeout_s
        while len(done) < len(pending):
            left = deadline - time.monotonic()
            if left <= 0:
                missing = sorted(pending.keys() - done.keys())
                raise SynthesisError(
                    f"no SynthesisCompleted within {self.timeout_s:.0f} s for {missing}: is the synth service "
                    f"consuming {self._topic.value}? (dead letters go to {self._dlq})"
                )
            # Filter inside read(): it returns at most `count` events and drops the rest of a poll.
            outstanding = pending.keys() - done.keys()
            found = self._reader.read(
                len(outstanding), timeout=min(left, 5.0), where=lambda env, ids=outstanding: request_id_of(env) in ids
            )
            for env in found:
                msg, rid = env.message, request_id_of(env)
                if isinstance(msg, events_pb2.DeadLetter):
                    raise SynthesisError(f"request {rid} dead-lettered by synth ({msg.error_kind}): {msg.error}")
                if msg.status != common_pb2.STATUS_OK:
                    raise SynthesisError(f"request {rid} failed: {msg.error}")
                done[rid] = msg
        out = {}
        for rid, completed in done.items():
            images = [self._fetcher.fetch(ref.uri, ref.sha256) for ref in completed.images]
            if len(images) != len(pending[rid].prompts):
                raise SynthesisError(f"request {rid}: {len(images)} images for {len(pending[rid].prompts)} prompts")
            out[rid] = SynthOutcome(images, completed.model, completed.random_weights)
        return out

    def close(self) -> None:
        self._publisher.close()
        self._reader.close()
