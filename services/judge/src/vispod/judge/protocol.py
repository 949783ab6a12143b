"""The judging protocol: every judge sees each pair in both orders, per criterion.

- The two orders are independent calls: A shown first, then B shown first; each raw verdict is
  mapped back to the A/B frame.
- The debiased outcome is a win only when both orders agree; any disagreement is a tie
  (stats.combine_orders).
- A reply that is not a strict JSON verdict is retried once with the parse error quoted; a second
  failure makes that order INVALID, and so the verdict. A backend that fails for good (after its
  own HTTP retries) also gives INVALID, with the error kept in `error`. Nothing is dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from vispod.judge import metrics
from vispod.judge.backends.base import JudgeBackend, JudgeBackendError, JudgeImage, JudgePrompt
from vispod.judge.rubrics import Rubric
from vispod.judge.settings import Price
from vispod.judge.stats import INVALID, TIE, A, B, combine_orders
from vispod.judge.verdict import VerdictParseError, parse_verdict
from vispod.v1 import events_pb2

log = logging.getLogger(__name__)

RETRY_NOTE = (
    "\n\nYour previous reply could not be used ({reason}). Reply with ONLY the JSON object "
    '{{"winner": "A" | "B" | "tie", "rationale": "..."}} and nothing else.'
)
_TO_PROTO = {
    A: events_pb2.OUTCOME_A_WINS,
    B: events_pb2.OUTCOME_B_WINS,
    TIE: events_pb2.OUTCOME_TIE,
    INVALID: events_pb2.OUTCOME_INVALID,
}
FROM_PROTO = {v: k for k, v in _TO_PROTO.items()}


@dataclass(frozen=True)
class PairInput:
    """What the judges see: two dialogues, the photos' captions, and (bounded) image bytes."""

    dialogue_a: str
    dialogue_b: str
    photos: str = ""
    images: tuple[JudgeImage, ...] = ()


@dataclass
class OrderResult:
    outcome: str  # in the A/B frame
    rationale: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0
    error: str = ""
    retryable: bool = False


@dataclass
class JudgedVerdict:
    judge: str
    criterion: str
    outcome: str
    outcome_ab: str
    outcome_ba: str
    rationale: str
    rubric_version: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    errors: list[str] = field(default_factory=list)
    # True when every failure was a backend outage worth redelivering, not a bad reply.
    retryable_failure: bool = False

    def to_proto(self) -> events_pb2.Verdict:
        v = events_pb2.Verdict(
            judge=self.judge,
            criterion=self.criterion,
            outcome=_TO_PROTO[self.outcome],
            outcome_ab=_TO_PROTO[self.outcome_ab],
            outcome_ba=_TO_PROTO[self.outcome_ba],
            rationale=self.rationale,
            rubric_version=self.rubric_version,
            cost_usd=self.cost_usd,
        )
        v.usage.prompt_tokens = self.prompt_tokens
        v.usage.completion_tokens = self.completion_tokens
        return v


def photos_text(captions: Sequence[str], n_images: int) -> str:
    """The photo list given to every judge: captions where known (text-only judges rely on them)."""
    if any(c.strip() for c in captions):
        return "\n".join(f"{i}. {c.strip() or '(no caption)'}" for i, c in enumerate(captions, 1))
    if n_images:
        return f"{n_images} photos (attached for judges that read images; no captions given)"
    return ""


def _swap(outcome: str) -> str:
    return {A: B, B: A}.get(outcome, outcome)


class Panel:
    """A set of judge backends and one rubric; `compare` runs the full protocol."""

    def __init__(
        self,
        backends: Sequence[JudgeBackend],
        rubric: Rubric,
        price_for: Callable[[str, str], Price | None] = lambda judge, model: None,
        max_concurrency: int = 4,
    ) -> None:
        self.backends = {b.name: b for b in backends}
        self.rubric = rubric
        self.price_for = price_for
        self.max_concurrency = max_concurrency

    def _one_order(self, backend: JudgeBackend, criterion: str, pair: PairInput, swapped: bool) -> OrderResult:
        first, second = (pair.dialogue_b, pair.dialogue_a) if swapped else (pair.dialogue_a, pair.dialogue_b)
        user = self.rubric.render(criterion, pair.photos, first, second)
        images = pair.images if backend.accepts_images else ()
        result = OrderResult(outcome=INVALID)
        reason = ""
        for attempt in (0, 1):
            text = user if attempt == 0 else user + RETRY_NOTE.format(reason=reason)
            started = time.perf_counter()
            try:
                completion = backend.complete(JudgePrompt(self.rubric.system, text, images, attempt))
            except JudgeBackendError as exc:
                metrics.REQUESTS.labels(backend.name, "error").inc()
                result.error, result.retryable = str(exc), exc.retryable
                result.rationale = f"judge error: {exc}"[:400]
                return result
            finally:
                metrics.REQUEST_SECONDS.labels(backend.name).observe(time.perf_counter() - started)
            metrics.REQUESTS.labels(backend.name, "ok").inc()
            result.attempts = attempt + 1
            result.prompt_tokens += completion.prompt_tokens
            result.completion_tokens += completion.completion_tokens
            try:
                parsed = parse_verdict(completion.text)
            except VerdictParseError as exc:
                reason = str(exc)[:200]
                metrics.PARSE_FAILURES.labels(backend.name, "true" if attempt else "false").inc()
                continue
            result.outcome = _swap(parsed.winner) if swapped else parsed.winner
            result.rationale = parsed.rationale
            return result
        result.rationale = f"unparseable verdict after a retry: {reason}"
        return result

    def compare(
        self, pair: PairInput, criteria: Sequence[str], judges: Sequence[str] | None = None
    ) -> list[JudgedVerdict]:
        names = list(judges) if judges else list(self.backends)
        unknown = [n for n in names if n not in self.backends]
        if unknown:
            raise KeyError(f"unknown judges {unknown}; configured: {sorted(self.backends)}")
        bad = [c for c in criteria if c not in self.rubric.criteria]
        if bad:
            raise KeyError(f"unknown criteria {bad}; rubric {self.rubric.version} has {sorted(self.rubric.criteria)}")
        tasks = [(n, c, swapped) for n in names for c in criteria for swapped in (False, True)]
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="judge") as pool:
            results = list(pool.map(lambda t: self._one_order(self.backends[t[0]], t[1], pair, t[2]), tasks))
        verdicts = []
        for i in range(0, len(tasks), 2):
            name, criterion, _ = tasks[i]
            verdicts.append(self._verdict(self.backends[name], criterion, results[i], results[i + 1]))
        return verdicts

    def _verdict(self, backend: JudgeBackend, criterion: str, ab: OrderResult, ba: OrderResult) -> JudgedVerdict:
        outcome = combine_orders(ab.outcome, ba.outcome)
        prompt_tokens = ab.prompt_tokens + ba.prompt_tokens
        completion_tokens = ab.completion_tokens + ba.completion_tokens
        price = self.price_for(backend.name, backend.model)
        cost = (
            (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1e6 if price else 0.0
        )
        errors = [e for e in (ab.error, ba.error) if e]
        metrics.VERDICTS.labels(backend.name, criterion, outcome.lower()).inc()
        metrics.TOKENS.labels(backend.name, "prompt").inc(prompt_tokens)
        metrics.TOKENS.labels(backend.name, "completion").inc(completion_tokens)
        metrics.COST.labels(backend.name).inc(cost)
        if INVALID not in (ab.outcome, ba.outcome) and ab.outcome != ba.outcome:
            metrics.POSITION_FLIPS.labels(backend.name, criterion).inc()
        return JudgedVerdict(
            judge=backend.name,
            criterion=criterion,
            outcome=outcome,
            outcome_ab=ab.outcome,
            outcome_ba=ba.outcome,
            rationale=f"[A first] {ab.rationale} [B first] {ba.rationale}",
            rubric_version=self.rubric.version,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            errors=errors,
            retryable_failure=bool(errors) and all(r.retryable for r in (ab, ba) if r.error) and outcome == INVALID,
        )
