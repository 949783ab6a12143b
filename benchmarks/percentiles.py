"""Shared by the benchmark scripts (run as `python benchmarks/bench_x.py`, so this folder is on sys.path)."""

from __future__ import annotations


def pct(values: list[float], q: float) -> float:
    """Nearest-rank quantile `q` (0..1) of non-empty `values`."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]
