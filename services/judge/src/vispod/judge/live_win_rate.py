"""The judged win rate of live traffic, exported as `vispod_judge_win_rate` (what the alert
VispodJudgedWinRateFalling and the dashboard read).

Per (pair, judge, criterion): system A's headline win rate (stats.py: a tie is half a win, invalid
verdicts left out) over the last `window` judged items. Labels stay bounded: `pair` is a configured
pair id ("a vs b") or "labelled" for every label-driven run (gate runs carry unbounded run ids).
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Sequence

from prometheus_client import Gauge

from vispod.judge.protocol import JudgedVerdict
from vispod.judge.stats import TIE, A, B

WIN_RATE = Gauge(
    "vispod_judge_win_rate",
    "System A's win rate (ties as half, invalid left out) over the most recent judged pairs.",
    ["pair", "judge", "criterion"],
)
LABELLED = "labelled"
_SCORE = {A: 1.0, TIE: 0.5, B: 0.0}


def pair_label(pair_id: str) -> str:
    return LABELLED if pair_id.startswith("label:") else pair_id


class RecentWinRate:
    def __init__(self, window: int = 100) -> None:
        self._recent: dict[tuple[str, str, str], deque[float]] = defaultdict(lambda: deque(maxlen=window))
        self._lock = threading.Lock()

    def record(self, pair_id: str, verdicts: Sequence[JudgedVerdict]) -> None:
        pair = pair_label(pair_id)
        with self._lock:
            for v in verdicts:
                if v.outcome not in _SCORE:
                    continue  # invalid: never in a denominator
                scores = self._recent[(pair, v.judge, v.criterion)]
                scores.append(_SCORE[v.outcome])
                WIN_RATE.labels(pair, v.judge, v.criterion).set(sum(scores) / len(scores))

    def rate(self, pair_id: str, judge: str, criterion: str) -> float | None:
        with self._lock:
            scores = self._recent.get((pair_label(pair_id), judge, criterion))
            return sum(scores) / len(scores) if scores else None
