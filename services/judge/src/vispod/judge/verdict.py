"""Parsing a judge's reply into a verdict: one JSON object {"winner": "A"|"B"|"tie", "rationale": "..."}."""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_RATIONALE_CHARS = 400


class VerdictParseError(ValueError):
    """The reply is not a valid verdict; the message says why (fed back to the judge on retry)."""


@dataclass(frozen=True)
class ParsedVerdict:
    winner: str  # "A" | "B" | "tie", in presentation order
    rationale: str


def _json_objects(text: str) -> list[str]:
    """Balanced top-level {...} spans of `text`, braces inside JSON strings respected."""
    spans, depth, start, in_str, escape = [], 0, -1, False, False
    for i, ch in enumerate(text):
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_str = False
        elif ch == '"' and depth > 0:
            in_str = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def parse_verdict(text: str) -> ParsedVerdict:
    """Strict on content, lenient on wrapping: the object may sit in a code fence or after prose,
    but it must be valid JSON with exactly a winner in {A, B, tie} and a string rationale."""
    candidates = _json_objects(text or "")
    if not candidates:
        raise VerdictParseError("no JSON object in the reply")
    errors = []
    for raw in candidates:
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(f"invalid JSON: {exc.msg}")
            continue
        if not isinstance(doc, dict) or "winner" not in doc:
            errors.append("object has no 'winner'")
            continue
        winner = doc["winner"]
        if not isinstance(winner, str) or winner.strip().lower() not in ("a", "b", "tie"):
            errors.append(f'winner must be "A", "B" or "tie", got {winner!r}')
            continue
        rationale = doc.get("rationale", "")
        if not isinstance(rationale, str):
            errors.append("rationale must be a string")
            continue
        w = winner.strip().lower()
        return ParsedVerdict(
            winner="tie" if w == "tie" else w.upper(), rationale=rationale.strip()[:MAX_RATIONALE_CHARS]
        )
    raise VerdictParseError("; ".join(errors))
