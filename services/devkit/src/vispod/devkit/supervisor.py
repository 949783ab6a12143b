"""`vispod up`'s process supervision: a service that dies is restarted with backoff, as systemd or Kubernetes would.

Each exit is said on the console with its reason and the delay before the restart (1 s, then doubling up to 16 s
while the crashes continue; a run of a minute resets it), and so is the moment the restarted service is ready
again. After `max_crashes` exits within `window_s` the supervisor gives up loudly and the stack stops: a service
that cannot stay up is a fault to fix, not to hide. Events the dead process had not committed are handled by its
successor (same consumer group and transactional id: the bus's exactly-once delivery covers the restart).
"""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RestartPolicy:
    """Delays double from `backoff_s` up to `max_backoff_s` while a service keeps dying; `max_crashes` exits within
    `window_s` end the stack; a run of `stable_after_s` resets the delay."""

    backoff_s: float = 1.0
    max_backoff_s: float = 16.0
    max_crashes: int = 5
    window_s: float = 300.0
    stable_after_s: float = 60.0


class GaveUp(Exception):
    """A service crashed too often; the message says which and how often."""


def exit_reason(code: int) -> str:
    if code < 0:
        with_name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return f"was killed by {with_name}"
    return f"exited with {code}"


def ready(metrics_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=0.5) as resp:
            return resp.status == 200
    except OSError:
        return False


@dataclass
class Supervised:
    """One service process and how to start it again."""

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    metrics_port: int
    log: Path
    process: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)
    crashes: deque[float] = field(default_factory=deque)
    streak: int = 0  # exits since the last stable run
    restart_at: float | None = None
    exited_at: float | None = None
    awaiting_ready: bool = False
    restarts: int = 0


class Supervisor:
    def __init__(self, services: list[Supervised], policy: RestartPolicy = RestartPolicy(),
                 say: Callable[[str], None] = lambda line: print(line, flush=True),
                 on_restart: Callable[[Supervised], None] = lambda svc: None,
                 is_ready: Callable[[int], bool] = ready) -> None:
        self.services = services
        self.policy = policy
        self.say = say
        self.on_restart = on_restart
        self.is_ready = is_ready

    def check(self, now: float | None = None) -> None:
        """One round: notice exits, start what is due, report readiness. Raises GaveUp."""
        now = time.monotonic() if now is None else now
        for svc in self.services:
            if svc.restart_at is None and svc.process.poll() is not None:
                self._exited(svc, now)
            elif svc.restart_at is not None and now >= svc.restart_at:
                svc.restart_at = None
                svc.process = svc.start()
                svc.started_at, svc.awaiting_ready = now, True
                svc.restarts += 1
                self.on_restart(svc)
                self.say(f"{svc.name}: restarted (pid {svc.process.pid}, restart {svc.restarts})")
            elif svc.awaiting_ready and self.is_ready(svc.metrics_port):
                svc.awaiting_ready = False
                took = now - (svc.exited_at or now)
                self.say(f"{svc.name}: ready again, {took:.1f} s after it exited")

    def _exited(self, svc: Supervised, now: float) -> None:
        p = self.policy
        code = svc.process.returncode
        svc.streak = 1 if now - svc.started_at >= p.stable_after_s else svc.streak + 1
        svc.crashes.append(now)
        while svc.crashes and now - svc.crashes[0] > p.window_s:
            svc.crashes.popleft()
        svc.exited_at, svc.awaiting_ready = now, False
        if len(svc.crashes) >= p.max_crashes:
            raise GaveUp(f"{svc.name} {exit_reason(code)}: {len(svc.crashes)} exits in {p.window_s:.0f} s, "
                         f"giving up on it and stopping the stack; see {svc.log}")
        delay = min(p.backoff_s * 2 ** (svc.streak - 1), p.max_backoff_s)
        svc.restart_at = now + delay
        self.say(f"{svc.name} {exit_reason(code)}; restarting it in {delay:g} s "
                 f"({len(svc.crashes)} of {p.max_crashes} exits allowed in {p.window_s:.0f} s; see {svc.log})")
