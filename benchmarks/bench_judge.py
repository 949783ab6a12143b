"""bench-judge: the judge's own overhead, without any model (timings of our code only).

Measured:
- stats: summarize() on a synthetic panel (judges x criteria x stories verdicts, with lengths), and
  one length-controlled logistic fit;
- verdict parsing: replies per second (clean JSON, fenced JSON, junk);
- protocol: Panel.compare() over an in-process judge that answers at once (thread pool, prompts,
  parsing, order swapping), as judge calls per second;
- HTTP: the OpenAI-compatible backend against a local 127.0.0.1 server answering at once, calls per second
  (connection reuse, JSON encode/decode, retry loop).
Writes bench-results/judge.json.
"""

from __future__ import annotations

import json
import os
import platform
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from vispod.judge import stats
from vispod.judge.backends.base import Completion, JudgeBackend, JudgePrompt, RetryPolicy
from vispod.judge.backends.openai_chat import OpenAIChatJudge
from vispod.judge.protocol import PairInput, Panel
from vispod.judge.rubrics import CRITERIA, load_rubric
from vispod.judge.verdict import VerdictParseError, parse_verdict

OUT = Path("bench-results/judge.json")
STORIES = int(os.environ.get("BENCH_JUDGE_STORIES", "1000"))
HTTP_CALLS = int(os.environ.get("BENCH_JUDGE_HTTP_CALLS", "400"))
DIALOGUE = "Speaker 1: " + "we walked to the lake and talked about the red boat " * 80


def bench_stats() -> dict[str, float]:
    rng = random.Random(0)
    records = []
    judges = [f"judge{i}" for i in range(3)]
    for s in range(STORIES):
        la, lb = rng.randint(600, 1200), rng.randint(600, 1200)
        for j in judges:
            for c in CRITERIA:
                ab = rng.choice([stats.A, stats.A, stats.B, stats.TIE])
                ba = rng.choice([stats.A, stats.B, stats.TIE, stats.INVALID])
                records.append(stats.Record(f"s{s}", j, c, stats.combine_orders(ab, ba), ab, ba, la, lb))
    t = time.perf_counter()
    report = stats.summarize(records)
    summarize_s = time.perf_counter() - t
    x = np.tanh(np.random.default_rng(0).normal(size=10_000))
    y = (np.random.default_rng(1).random(10_000) < 1 / (1 + np.exp(-(0.3 + x)))).astype(float)
    t = time.perf_counter()
    fit = stats.logistic_fit(x, y)
    return {
        "records": len(records),
        "summarize_seconds": round(summarize_s, 4),
        "cells": len(report.cells),
        "logistic_fit_10k_ms": round(1000 * (time.perf_counter() - t), 2),
        "logistic_iterations": fit.iterations,
    }


def bench_parse() -> dict[str, float]:
    replies = [
        '{"winner": "A", "rationale": "more natural turn-taking"}',
        'Here is my verdict:\n```json\n{"winner": "tie", "rationale": "both fine {really}"}\n```',
        "Dialogue A is better because it flows.",
    ] * 3000
    t = time.perf_counter()
    bad = 0
    for r in replies:
        try:
            parse_verdict(r)
        except VerdictParseError:
            bad += 1
    secs = time.perf_counter() - t
    return {"replies": len(replies), "replies_per_second": round(len(replies) / secs), "unparseable": bad}


class InstantJudge(JudgeBackend):
    kind = "bench"

    def __init__(self) -> None:
        super().__init__("bench:instant", "instant", False)

    def complete(self, prompt: JudgePrompt) -> Completion:
        return Completion('{"winner": "A", "rationale": "ok"}', 10, 5)


def bench_protocol() -> dict[str, float]:
    panel = Panel([InstantJudge()], load_rubric("v1"), max_concurrency=4)
    pair = PairInput(DIALOGUE, DIALOGUE[:2000], "1. a lake\n2. a boat")
    pairs = 100
    t = time.perf_counter()
    for _ in range(pairs):
        panel.compare(pair, list(CRITERIA))
    secs = time.perf_counter() - t
    calls = pairs * len(CRITERIA) * 2
    return {
        "pairs": pairs,
        "judge_calls": calls,
        "calls_per_second": round(calls / secs),
        "ms_per_pair_5_criteria": round(1000 * secs / pairs, 2),
    }


def bench_http() -> dict[str, float]:
    body = json.dumps(
        {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": '{"winner": "B", "rationale": "x"}'}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 20},
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            # http.server writes headers and body separately: without this, Nagle + delayed ACK add ~40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    judge = OpenAIChatJudge(
        "openai:bench",
        "bench",
        base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
        api_key="k",
        accepts_images=False,
        timeout_s=10,
        retry=RetryPolicy(max_retries=0),
        max_tokens=64,
        temperature=0.0,
        json_mode=True,
    )
    prompt = JudgePrompt("system", DIALOGUE)
    judge.complete(prompt)  # connect
    latencies = []
    t = time.perf_counter()
    for _ in range(HTTP_CALLS):
        s = time.perf_counter()
        judge.complete(prompt)
        latencies.append(time.perf_counter() - s)
    secs = time.perf_counter() - t
    judge.close()
    server.shutdown()
    server.server_close()
    latencies.sort()
    return {
        "calls": HTTP_CALLS,
        "calls_per_second": round(HTTP_CALLS / secs),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99) - 1], 2),
    }


def main() -> None:
    result = {
        "benchmark": "judge",
        "note": "our code's overhead only; no model is called (a real judge call takes seconds)",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        },
        "stats": bench_stats(),
        "parse": bench_parse(),
        "protocol": bench_protocol(),
        "http_openai_local": bench_http(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
