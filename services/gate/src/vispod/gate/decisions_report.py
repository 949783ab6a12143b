"""The gate's decisions (its JSON-lines log) as one HTML page: a table and the evidence over time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vispod.gate.html_parts import figure_png, new_figure, page, png_img, table, write_atomic


def _f(evidence: dict, key: str, digits: int = 3) -> str:
    value = evidence.get(key)
    return "–" if value is None else f"{value:.{digits}f}"


def _plot(decisions: Sequence[dict], threshold: float) -> bytes:
    fig, ax = new_figure(8, 3)
    xs = list(range(1, len(decisions) + 1))
    lower = [d.get("evidence", {}).get("win_rate_lower", 0.0) for d in decisions]
    rate = [d.get("evidence", {}).get("win_rate", 0.0) for d in decisions]
    colours = ["tab:green" if d.get("decision") == "promote" else "tab:red" for d in decisions]
    ax.scatter(xs, rate, marker="o", facecolors="none", edgecolors=colours, label="win rate")
    ax.scatter(xs, lower, marker="v", c=colours, label="Wilson lower bound")
    ax.axhline(threshold, color="grey", linestyle="--", label=f"threshold {threshold}")
    ax.set_ylim(0, 1)
    ax.set_xlabel("decision #")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Gate decisions (green: promoted, red: not promoted)", fontsize=9)
    return figure_png(fig)


def render_decisions_report(out_path: Path, decisions: Sequence[dict], threshold: float = 0.5) -> Path:
    rows = []
    for d in decisions:
        ev = d.get("evidence", {})
        rows.append([d.get("time", ""), d.get("adapter_id", ""), d.get("baseline", ""), d.get("decision", ""),
                     d.get("applied_state", ""), d.get("criterion", ""), _f(ev, "win_rate"), _f(ev, "win_rate_lower"),
                     _f(ev, "grounding_delta", 2), f"{ev.get('n', 0):g}", f"{d.get('seconds', 0):.1f}",
                     d.get("decided_by", "judge"), d.get("reason", "")])
    headers = ["Time", "Candidate", "Compared with", "Decision", "State", "Criterion", "Win rate", "Lower bound",
               "CLIPScore Δ", "n", "Seconds", "Decided by", "Reason"]
    body = f"<p>{len(decisions)} decisions.</p>" + table(headers, rows, left=6)
    if decisions:
        body += png_img(_plot(decisions, threshold), "gate decisions")
    return write_atomic(Path(out_path), page("vispod gate decisions", body))
