"""gRPC JudgeService.Compare: one pair, every requested judge and criterion, both orders."""

from __future__ import annotations

import grpc

from vispod.common.errors import InvalidArgument
from vispod.judge.judging import Comparer, dialogue_text
from vispod.v1 import events_pb2, judge_pb2, judge_pb2_grpc

MAX_DIALOGUE_CHARS = 200_000


class JudgeServicer(judge_pb2_grpc.JudgeServiceServicer):
    def __init__(self, comparer: Comparer) -> None:
        self.comparer = comparer

    def _validate(self, request: judge_pb2.CompareRequest) -> tuple[str, str, list[str], list[str]]:
        text_a, text_b = dialogue_text(request.a), dialogue_text(request.b)
        if not text_a.strip() or not text_b.strip():
            raise InvalidArgument("dialogues a and b must both have text or turns")
        if max(len(text_a), len(text_b)) > MAX_DIALOGUE_CHARS:
            raise InvalidArgument(f"a dialogue is longer than {MAX_DIALOGUE_CHARS} characters")
        settings = self.comparer.settings
        if len(request.images) > settings.images.max_images:
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
        verdicts = self.comparer.compare(request.images, text_a, text_b, criteria, judges)
        return judge_pb2.CompareResponse(verdicts=[v.to_proto() for v in verdicts])


__all__ = ["JudgeServicer", "events_pb2"]
