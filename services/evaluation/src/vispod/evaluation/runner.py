"""`vispod eval`: score (and optionally generate and judge) every story of an evaluation set per system.

Talks to the metrics, judge and generator services over gRPC. Stories without any photo cannot be scored by
the metrics service (it scores a dialogue against its images); their style metrics are computed with the
metrics package's own functions, and they get no grounding. Not part of the gate's image: the live gate's
per-story calls are vispod.gate.story_calls.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from vispod.common.metric_fields import PAPER_TABLE, flat_values, metric_names, sections
from vispod.common.story_folder import Story
from vispod.gate.clients import Clients, outcome_for_a
from vispod.gate.decision import WinRate, win_rate
from vispod.gate.story_calls import GenerationFailed, generate, story_event
from vispod.metrics.style import style_of_text
from vispod.v1 import common_pb2, events_pb2, judge_pb2, metrics_pb2

log = logging.getLogger(__name__)

# From the proto descriptors (fields marked `(vispod.v1.metric)`): a new metric field shows up without an edit here.
PAPER_FIELDS = PAPER_TABLE
ROBUST_FIELDS = metric_names(common_pb2.StyleMetrics)
GROUNDING_FIELDS = metric_names(common_pb2.GroundingMetrics)
# Every other section the metrics service computes (format, aligned grounding, hallucination, naturalness), as
# `<section>.<field>`.
TEXT_FIELDS = tuple(f.key for name, fields in sections().items() if name not in ("style", "paper_style", "grounding")
                    for f in fields)
# Other stories' photos sent as distractors for the retrieval accuracy.
DISTRACTOR_IMAGES = 10
RANDOM_CLIP_NOTE = "CLIP weights are RANDOM (no real CLIP weights offline): the grounding numbers measure nothing"

Progress = Callable[[str], None]


@dataclass
class StoryScore:
    story_id: str
    system: str
    paper: dict[str, float]
    robust: dict[str, float]
    grounding: dict[str, float] | None = None
    text: dict[str, float] | None = None  # TEXT_FIELDS that were computed (None values left out)
    random_weights: bool | None = None
    clip_model: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class JudgeCell:
    """Win rate of `system_a` against `system_b` for one judge and criterion."""

    system_a: str
    system_b: str
    judge: str
    criterion: str
    rate: WinRate
    rate_excl_ties: WinRate


@dataclass
class EvalResult:
    """One `vispod eval` run: every story's scores, the judges' win rates and the notes a reader must see first."""

    set_dir: Path
    systems: list[str]
    stories: int = 0  # stories in the set
    scores: list[StoryScore] = field(default_factory=list)
    judges: list[JudgeCell] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def of(self, system: str) -> list[StoryScore]:
        return [s for s in self.scores if s.system == system]

    def mean(self, system: str, section: str, name: str) -> float:
        """Mean over the stories where the system has the value (NaN when none)."""
        values = []
        for score in self.of(system):
            block = getattr(score, section)
            if block is not None and name in block:
                values.append(float(block[name]))
        return sum(values) / len(values) if values else math.nan

    def count(self, system: str, section: str) -> int:
        return sum(1 for s in self.of(system) if getattr(s, section) is not None)

    def count_of(self, system: str, section: str, name: str) -> int:
        """Stories where the system has this metric."""
        return sum(1 for s in self.of(system) if name in (getattr(s, section) or {}))

    @property
    def grounding_random(self) -> bool | None:
        flags = {s.random_weights for s in self.scores if s.grounding is not None}
        return None if not flags else any(flags)


def style_dict(msg: common_pb2.StyleMetrics, names: Sequence[str]) -> dict[str, float]:
    return {n: float(getattr(msg, n)) for n in names}


def _local_style(text: str) -> tuple[dict[str, float], dict[str, float]]:
    """Paper and robust style without the service (stories with no photo), by the metrics package's functions."""
    paper, robust = style_of_text(text, "paper"), style_of_text(text, "robust")
    return ({n: float(getattr(paper, n)) for n in PAPER_FIELDS}, {n: float(getattr(robust, n)) for n in ROBUST_FIELDS})


def _distractors(stories: Sequence[Story], index: int) -> list[common_pb2.ImageRef]:
    out: list[common_pb2.ImageRef] = []
    for step in range(1, len(stories)):
        other = stories[(index + step) % len(stories)]
        out.extend(other.image_refs())
        if len(out) >= DISTRACTOR_IMAGES:
            break
    return out[:DISTRACTOR_IMAGES]


def score_dialogue(clients: Clients, story: Story, system: str, dialogue: common_pb2.Dialogue,
                   distractors: Sequence[common_pb2.ImageRef], timeout: float) -> StoryScore:
    """One dialogue through MetricsService.Score (or the local style functions when the story has no photo)."""
    if not story.images:
        paper, robust = _local_style(dialogue.text)
        return StoryScore(story.story_id, system, paper, robust, warnings=["no photo: style only, no grounding"])
    response: metrics_pb2.ScoreResponse = clients.metrics.Score(
        metrics_pb2.ScoreRequest(generated=story_event(story, system, dialogue), distractors=distractors),
        timeout=timeout)
    scored = response.result
    score = StoryScore(story.story_id, system, style_dict(scored.paper_style, PAPER_FIELDS),
                       style_dict(scored.style, ROBUST_FIELDS), warnings=list(scored.warnings))
    score.text = {k: v for k, v in flat_values(scored).items() if k in TEXT_FIELDS and v is not None}
    if scored.HasField("grounding"):
        g = scored.grounding
        score.grounding = {n: float(getattr(g, n)) for n in GROUNDING_FIELDS}
        score.random_weights = g.random_weights
        score.clip_model = g.clip_model
    return score


def compare(clients: Clients, story: Story, a: common_pb2.Dialogue, b: common_pb2.Dialogue, system_a: str,
            system_b: str, criteria: Sequence[str], judges: Sequence[str], timeout: float) -> list[events_pb2.Verdict]:
    response: judge_pb2.CompareResponse = clients.judge.Compare(
        judge_pb2.CompareRequest(a=story_event(story, system_a, a), b=story_event(story, system_b, b),
                                 criteria=list(criteria), judges=list(judges)),
        timeout=timeout)
    return list(response.result.verdicts)


def judge_cells(verdicts: Sequence[events_pb2.Verdict], system_a: str, system_b: str) -> list[JudgeCell]:
    cells: dict[tuple[str, str], list[str]] = {}
    for v in verdicts:
        cells.setdefault((v.judge, v.criterion), []).append(outcome_for_a(v.outcome))
    return [JudgeCell(system_a, system_b, judge, criterion, win_rate(outs, "half"), win_rate(outs, "exclude"))
            for (judge, criterion), outs in sorted(cells.items())]


@dataclass
class EvalOptions:
    systems: list[str]
    # system label -> adapter ("" active, "base" the base model): generated before scoring.
    generate: dict[str, str] = field(default_factory=dict)
    out_dir: Path | None = None
    judges: list[str] = field(default_factory=list)
    criteria: list[str] = field(default_factory=list)
    judge: bool = False
    speakers: list[str] = field(default_factory=lambda: ["Speaker 1", "Speaker 2"])
    target_words: int = 0
    seed: int = 7
    timeout: float = 600.0


def run_evaluation(stories: Sequence[Story], set_dir: Path, clients: Clients, options: EvalOptions,
                   progress: Progress = lambda _msg: None) -> EvalResult:
    result = EvalResult(Path(set_dir), list(options.systems), stories=len(stories))
    if options.generate:
        _generate_all(stories, clients, options, result, progress)
    started = time.monotonic()
    dialogues: dict[tuple[str, str], common_pb2.Dialogue] = {}
    for i, story in enumerate(stories):
        distractors = _distractors(stories, i) if story.images else []
        for system in options.systems:
            text = story.text(system)
            if text is None:
                continue
            dialogue = common_pb2.Dialogue(text=text)
            dialogues[(story.story_id, system)] = dialogue
            try:
                result.scores.append(score_dialogue(clients, story, system, dialogue, distractors, options.timeout))
            except grpc.RpcError as exc:
                note = f"story {story.story_id} / {system}: not scored: {exc.code().name}: {exc.details()}"
                result.notes.append(note)
                log.warning(note)
        progress(f"scored {i + 1}/{len(stories)} stories ({time.monotonic() - started:.0f} s)")
    missing = {s: len(stories) - len(result.of(s)) for s in options.systems}
    for system, n in missing.items():
        if n:
            result.notes.append(f"{system}: {n} of {len(stories)} stories have no transcript or were not scored")
    if result.grounding_random:
        result.notes.insert(0, RANDOM_CLIP_NOTE)
    if options.judge and len(options.systems) >= 2:
        _judge_all(stories, clients, options, dialogues, result, progress)
    return result


def _generate_all(stories: Sequence[Story], clients: Clients, options: EvalOptions, result: EvalResult,
                  progress: Progress) -> None:
    if options.out_dir is None:
        raise ValueError("--generate needs --out: generated transcripts are written there, never into the set")
    for system, adapter in options.generate.items():
        for i, story in enumerate(stories):
            if not story.images:
                result.notes.append(f"story {story.story_id}: no photo, nothing generated for {system}")
                continue
            try:
                event = generate(clients, story, adapter, speakers=options.speakers,
                                 target_words=options.target_words, seed=options.seed, timeout=options.timeout,
                                 labels={"vispod.eval.system": system})
            except grpc.RpcError as exc:
                result.notes.append(f"story {story.story_id} / {system}: generation failed: {_rpc_reason(exc)}")
                continue
            except GenerationFailed as exc:  # a FAILED DialogueGenerated: the reason says so
                result.notes.append(str(exc))
                continue
            target = options.out_dir / "transcripts" / f"story_{story.story_id}" / f"{system}.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(event.dialogue.text, encoding="utf-8")
            story.transcripts[system] = target
            if event.random_weights:
                note = f"{system}: generated by {event.model or 'a model'} with RANDOM weights"
                if note not in result.notes:
                    result.notes.append(note)
            if event.input_mode == events_pb2.INPUT_MODE_CAPTIONS:
                note = f"{system}: the model read the photos' captions, not their pixels"
                if note not in result.notes:
                    result.notes.append(note)
            progress(f"generated {system} {i + 1}/{len(stories)}")


def _judge_all(stories: Sequence[Story], clients: Clients, options: EvalOptions,
               dialogues: dict[tuple[str, str], common_pb2.Dialogue], result: EvalResult, progress: Progress) -> None:
    system_a = options.systems[0]
    for system_b in options.systems[1:]:
        verdicts: list[events_pb2.Verdict] = []
        for i, story in enumerate(stories):
            a, b = dialogues.get((story.story_id, system_a)), dialogues.get((story.story_id, system_b))
            if a is None or b is None:
                continue
            try:
                verdicts += compare(clients, story, a, b, system_a, system_b, options.criteria, options.judges,
                                    options.timeout)
            except grpc.RpcError as exc:
                result.notes.append(f"story {story.story_id}: not judged: {_rpc_reason(exc)}")
            progress(f"judged {system_a} vs {system_b}: {i + 1}/{len(stories)}")
        result.judges += judge_cells(verdicts, system_a, system_b)


def _rpc_reason(exc: Exception) -> str:
    if isinstance(exc, grpc.RpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc)
