"""gRPC JudgeService.Compare: one pair of DialogueGenerated events, every requested judge and criterion, both
orders; the answer is the JudgementCompleted the Kafka path would publish (built by the same judging.judgement_of)."""

from __future__ import annotations

import grpc

from vispod.common.errors import InvalidArgument
from vispod.judge.judging import Comparer, dialogue_text, judgement_of, pair_images
from vispod.v1 import events_pb2, judge_pb2, judge_pb2_grpc

MAX_DIALOGUE_CHARS = 200_000


class JudgeServicer(judge_pb2_grpc.JudgeServiceServicer):
    def __init__(self, comparer: Comparer) -> None:
        self.comparer = comparer

    def _validate(self, request: judge_pb2.CompareRequest) -> tuple[str, str, list[str], list[str]]:
        text_a, text_b = dialogue_text(request.a.dialogue), dialogue_text(request.b.dialogue)
        if not text_a.strip() or not text_b.strip():
            raise InvalidArgument("dialogues a and b must both have text or turns")
        if max(len(text_a), len(text_b)) > MAX_DIALOGUE_CHARS:
            raise InvalidArgument(f"a dialogue is longer than {MAX_DIALOGUE_CHARS} characters")
        settings = self.comparer.settings
        if len(pair_images(request.a, request.b)) > settings.images.max_images:
            raise InvalidArgument(f"at most {settings.images.max_images} images")
        criteria = list(dict.fromkeys(request.criteria)) or list(settings.criteria)
        known = self.comparer.panel.rubric.criteria
        unknown = [c for c in criteria if c not in known]
        if unknown:
            raise InvalidArgument(f"unknown criteria {unknown}; known: {sorted(known)}")
        judges = list(dict.fromkeys(request.judges)) or list(self.comparer.panel.backends)
        missing = [j for j in judges if j not in self.comparer.panel.backends]
        if missing:
            raise InvalidArgument(
                f"judges {missing} are not configured; configured: {sorted(self.comparer.panel.backends)}"
            )
        return text_a, text_b, criteria, judges

    def Compare(self, request: judge_pb2.CompareRequest, context: grpc.ServicerContext) -> judge_pb2.CompareResponse:
        text_a, text_b, criteria, judges = self._validate(request)
        verdicts = self.comparer.compare(pair_images(request.a, request.b), text_a, text_b, criteria, judges)
        result = judgement_of(request.a, request.b)
        result.verdicts.extend(v.to_proto() for v in verdicts)
        return judge_pb2.CompareResponse(result=result)


__all__ = ["JudgeServicer", "events_pb2"]
