"""`vispod gate report` (the gate's decisions log as HTML) and `vispod gate run` (the service). `vispod eval`, the
offline evaluation of an evaluation set, is vispod.evaluation.cli: the research harness is not in the gate's image."""

from __future__ import annotations

import argparse
from pathlib import Path

from vispod.common.settings import load_settings
from vispod.gate.decisions_log import DecisionsLog
from vispod.gate.settings import GateSettings


def register(sub: argparse._SubParsersAction) -> None:
    gate = sub.add_parser("gate", help="the promotion gate")
    gate_sub = gate.add_subparsers(dest="gate_command", metavar="COMMAND")
    rep = gate_sub.add_parser("report", help="render the gate's decisions log as HTML")
    rep.add_argument("--log", type=Path, default=None, help="decisions log (default: from VISPOD_GATE_* settings)")
    rep.add_argument("--out", type=Path, default=None, help="HTML file (default: from settings)")
    rep.set_defaults(func=run_gate_report)
    run = gate_sub.add_parser("run", help="run the gate service (same as python -m vispod.gate)")
    run.set_defaults(func=_run_service)
    gate.set_defaults(func=lambda _args: (gate.print_help(), 2)[1])


def _run_service(_args: argparse.Namespace) -> int:
    # deferred: `vispod` registers every command at each start; the service pulls Kafka and matplotlib (~0.8 s)
    from vispod.gate.service import main

    main()
    return 0


def run_gate_report(args: argparse.Namespace) -> int:
    # deferred: `vispod` registers every command at each start; the report pulls matplotlib (~0.7 s)
    from vispod.gate.decisions_report import render_decisions_report

    settings = load_settings(GateSettings)
    path = args.log or settings.decisions_path()
    entries = DecisionsLog(path).entries()
    out = render_decisions_report(args.out or settings.report_file(), entries, settings.min_win_rate_lower)
    print(f"{len(entries)} decisions from {path} -> {out}")
    return 0
