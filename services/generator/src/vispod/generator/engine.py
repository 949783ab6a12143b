"""One generation: validate → resolve the adapter once → prompt → stream → parse/repair → retry once → result.

Callers (gRPC servicer, Kafka handler, CLI, benchmark) share one `Generator`, whose semaphore is the
concurrency limit. Bad requests raise InvalidArgument; an unreachable or overloaded engine raises
BackendUnavailable (the caller may try again later); everything else ends in a DialogueGenerated,
FAILED with the reason when no usable dialogue came out — never an empty OK.

Streaming: `on_attempt` is told when each attempt starts (and why the previous one was discarded),
then `on_turn` gets that attempt's turns as soon as each is complete; the final DialogueGenerated is
authoritative. Cancellation: `cancelled` is polled between chunks; once it says so, the backend's
stream is closed (which stops the engine) and GenerationCancelled is raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from google.protobuf.timestamp_pb2 import Timestamp

from vispod.common.errors import InvalidArgument
from vispod.common.images import ImageFetcher
from vispod.generator import metrics
from vispod.generator.adapters import AdapterUnavailable, AdapterVersion
from vispod.generator.backends.base import Backend, BackendError, BackendUnavailable, GenerationInput
from vispod.generator.few_shot import example_turns, worked_example
from vispod.generator.parsing import TranscriptParser, render
from vispod.generator.prompting import build_prompt, speaker_label
from vispod.generator.request import Job, prepare
from vispod.generator.scene_inputs import scene_inputs
from vispod.generator.scene_plan import scene_steps
from vispod.generator.settings import GeneratorSettings
from vispod.perception.perceiver import NoPerception, Perceiver, PhotoPerceiver
from vispod.v1 import common_pb2, events_pb2

log = logging.getLogger(__name__)
TurnCallback = Callable[[common_pb2.Turn], None]
AttemptCallback = Callable[[int, str], None]


class GenerationCancelled(Exception):
    """The caller went away; the generation was stopped and has no result."""


class Generator:
    def __init__(self, settings: GeneratorSettings, backend: Backend, registry, fetcher: ImageFetcher | None = None,
                 perceiver: Perceiver | None = None):
        self.settings = settings
        self.backend = backend
        self.registry = registry
        self.fetcher = fetcher or ImageFetcher(settings.images)
        self._slots = threading.BoundedSemaphore(settings.concurrency)
        # A text-only model reads facts about the photos (unless told to read captions only); a VLM sees them.
        reads_facts = self.text_only and settings.text_input != "captions"
        self.perceiver: Perceiver = perceiver or (PhotoPerceiver(settings.perception) if reads_facts
                                                  else NoPerception())

    @property
    def text_only(self) -> bool:
        return self.backend.input_mode == events_pb2.INPUT_MODE_CAPTIONS

    def prepare(self, event: events_pb2.ImageSetSubmitted) -> Job:
        try:
            return prepare(event, self.settings, self.fetcher, self.text_only)
        except InvalidArgument:  # ImageAccessError included
            metrics.REQUESTS.labels(self.backend.name, "invalid").inc()
            raise

    def generate(self, event: events_pb2.ImageSetSubmitted, on_turn: TurnCallback | None = None,
                 job: Job | None = None, on_attempt: AttemptCallback | None = None,
                 cancelled: Callable[[], bool] | None = None) -> events_pb2.DialogueGenerated:
        started = time.monotonic()
        job = job or self.prepare(event)
        name = self.backend.name
        with self._slots:
            metrics.IN_FLIGHT.labels(name).inc()
            try:
                result = self._run(job, started, on_turn or (lambda _t: None), on_attempt or (lambda _n, _r: None),
                                   cancelled or (lambda: False))
            except BackendUnavailable:
                metrics.REQUESTS.labels(name, "unavailable").inc()
                raise
            except GenerationCancelled:
                metrics.REQUESTS.labels(name, "cancelled").inc()
                log.info("generation cancelled by the caller", extra={"image_set_id": event.image_set_id})
                raise
            finally:
                metrics.IN_FLIGHT.labels(name).dec()
        result.latency_seconds = time.monotonic() - started
        ok = result.status == common_pb2.STATUS_OK
        metrics.REQUESTS.labels(name, "ok" if ok else "failed").inc()
        metrics.LATENCY.labels(name).observe(result.latency_seconds)
        metrics.TOKENS.labels(name, "prompt").inc(result.usage.prompt_tokens)
        metrics.TOKENS.labels(name, "completion").inc(result.usage.completion_tokens)
        log.info("dialogue generated", extra={"image_set_id": event.image_set_id, "status": "ok" if ok else "failed",
                                              "adapter_id": result.adapter_id, "attempts": result.attempts,
                                              "seconds": round(result.latency_seconds, 3), "error": result.error})
        return result

    def _base_result(self, job: Job, adapter: AdapterVersion | None) -> events_pb2.DialogueGenerated:
        ev = job.event
        adapter_id = adapter.adapter_id if adapter else ""
        now = Timestamp()
        now.GetCurrentTime()
        images = []
        for submitted in ev.images:
            ref = common_pb2.ImageRef()
            ref.CopyFrom(submitted)
            ref.ClearField("perception")       # facts are perception's own, never a submitter's
            images.append(ref)
        return events_pb2.DialogueGenerated(
            image_set_id=ev.image_set_id, tenant=ev.tenant, correlation_id=ev.correlation_id,
            images=images, model=self.backend.model, backend=self.backend.name, adapter_id=adapter_id,
            system=f"{self.backend.model}@{adapter_id}" if adapter_id else self.backend.model,
            prompt_version=self.settings.prompt_version, input_mode=self.backend.input_mode,
            labels=dict(ev.labels), generated_at=now, random_weights=self.backend.random_weights,
            dialogue=common_pb2.Dialogue(speakers=job.speakers),
        )

    def _run(self, job: Job, started: float, on_turn: TurnCallback, on_attempt: AttemptCallback,
             cancelled: Callable[[], bool]) -> events_pb2.DialogueGenerated:
        s = self.settings
        ev = job.event
        try:
            # Resolved once: the whole request (retry included) runs on this adapter.
            adapter = self.registry.resolve(ev.adapter, ev.image_set_id)
        except AdapterUnavailable as exc:
            result = self._base_result(job, None)
            result.adapter_id = ev.adapter
            return _failed(result, f"adapter unavailable: {exc}")
        result = self._base_result(job, adapter)
        deadline = started + s.generation_deadline_s
        scenes_in = scene_inputs(job, s.text_input, self.perceiver) if self.text_only else None
        if scenes_in is not None:
            result.input_mode = scenes_in.input_mode
            for ref, facts in zip(result.images, scenes_in.facts, strict=False):
                ref.perception.CopyFrom(facts)
        texts = scenes_in.texts if scenes_in is not None else None
        reason = ""
        scenes = s.plan == "scenes" and getattr(self.backend, "supports_steps", False)
        shows_facts = scenes_in is not None and scenes_in.shows_facts
        example = worked_example(version=s.prompt_version, facts=shows_facts, plan="scenes" if scenes else "whole") \
            if s.few_shot and texts is not None else ""
        result.few_shot = bool(example)
        for attempt in range(1, s.max_attempts + 1):
            if cancelled():
                raise GenerationCancelled()
            attempt_started = time.monotonic()
            result.attempts = attempt
            on_attempt(attempt, reason)
            prompt = build_prompt(speakers=job.speakers, num_images=len(ev.images), target_words=job.target_words,
                                  language=job.language, style=ev.style_instructions,
                                  captions=texts, version=s.prompt_version, retry_reason=reason,
                                  plan="scenes" if scenes else "whole", facts=shows_facts, example=example)
            inp = GenerationInput(system=prompt.system, user=prompt.user, images=job.images,
                                  image_bytes=job.image_bytes, max_new_tokens=s.max_new_tokens,
                                  temperature=s.temperature, top_p=s.top_p, seed=ev.seed + attempt - 1,
                                  adapter=adapter, deadline=deadline,
                                  no_copy=example_turns(s.prompt_version, shows_facts) if example else ())
            if scenes:
                # Structure given, words the model's (see scene_plan); the steps' text arrives in the stream.
                inp.steps = scene_steps(num_scenes=len(ev.images), num_speakers=len(job.speakers),
                                        turns_per_scene=s.turns_per_scene, target_words=job.target_words,
                                        captions=texts or ())
                first = inp.steps[0]
                result.turn_budget.CopyFrom(events_pb2.TurnBudget(min_words=first.min_words,
                                                                  soft_words=first.soft_words,
                                                                  max_words=first.max_words))
            elif s.prefill_first_label and self.backend.supports_prefill:
                # Starting the answer with the first label keeps small models in the transcript format.
                inp.prefill = f"{speaker_label(0)}:"
            parser = TranscriptParser(job.speaker_names, texts or job.captions, len(ev.images))
            parser.feed(inp.prefill)
            raw: list[str] = [inp.prefill]
            try:
                stream = self.backend.stream(inp)
                timed_out = False
                for chunk in stream:
                    if cancelled():
                        _close(stream)
                        raise GenerationCancelled()
                    raw.append(chunk)
                    for turn in parser.feed(chunk):
                        on_turn(turn)
                    if time.monotonic() > deadline:
                        timed_out = True
                        _close(stream)
                        break
            except AdapterUnavailable as exc:
                return _failed(result, f"adapter unavailable: {exc}")
            except BackendError as exc:
                return _failed(result, str(exc))
            result.usage.prompt_tokens += stream.prompt_tokens
            result.usage.completion_tokens += stream.completion_tokens
            parsed = parser.finish(truncated=stream.truncated or timed_out)
            if timed_out:
                parsed.warnings.append(f"generation deadline of {s.generation_deadline_s:.0f}s reached")
            if parsed.ok:
                metrics.ATTEMPTS.labels(self.backend.name, "ok").inc()
                for turn in parsed.pending:
                    on_turn(turn)
                result.status = common_pb2.STATUS_OK
                result.dialogue.turns.extend(parsed.turns)
                result.dialogue.text = render(parsed.turns)
                result.warnings.extend(parsed.warnings)
                if parsed.warnings:
                    metrics.REPAIRS.labels(self.backend.name).inc()
                return result
            metrics.ATTEMPTS.labels(self.backend.name, "malformed").inc()
            reason = parsed.error
            head = " ".join("".join(raw).split())[:160]
            result.warnings.append(f"attempt {attempt}: malformed output: {reason} (output began: {head!r})")
            # Bounded budget: retry only when another attempt as long as this one still fits the deadline.
            took = time.monotonic() - attempt_started
            if attempt < s.max_attempts and time.monotonic() + took > deadline:
                result.warnings.append("no retry: it would not finish before the generation deadline")
                break
        return _failed(result, f"malformed model output after {result.attempts} attempt(s): {reason}")


def _close(stream: object) -> None:
    """Closes a backend's chunk iterator: releases the HTTP stream / stops the local generation."""
    close = getattr(getattr(stream, "chunks", None), "close", None)
    if close:
        close()


def _failed(result: events_pb2.DialogueGenerated, reason: str) -> events_pb2.DialogueGenerated:
    result.status = common_pb2.STATUS_FAILED
    result.error = reason
    del result.dialogue.turns[:]
    result.dialogue.text = ""
    return result
