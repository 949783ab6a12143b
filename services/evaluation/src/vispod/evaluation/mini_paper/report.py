"""report.html of the mini-paper: the table with intervals, a plot per metric with CI bars, the gate's decision, and
stories side by side (the photos with the detected boxes, the facts the systems read, each system's dialogue)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vispod.common.metric_fields import PAPER_TABLE
from vispod.evaluation.story_report import boxes_html, facts_html, turn_html
from vispod.gate.html_parts import esc, figure_png, notes_box, page, photo_img, plt, png_img, table
from vispod.v1 import common_pb2, events_pb2

PAPER_FIELDS = PAPER_TABLE


@dataclass(frozen=True)
class Showcase:
    """One story side by side: its photos, human captions, the facts the systems read, each system's dialogue."""

    story_id: str
    photos: list[Path]
    captions: list[str]
    facts: list[common_pb2.Perception] = field(default_factory=list)
    dialogues: list[tuple[str, events_pb2.DialogueGenerated]] = field(default_factory=list)


def showcase_html(item: Showcase) -> str:
    shots = []
    for i, path in enumerate(item.photos):
        seen = item.facts[i] if i < len(item.facts) else common_pb2.Perception()
        try:
            img = f'<div class="shot">{photo_img(Path(path), f"photo {i + 1}", 240)}{boxes_html(seen)}</div>'
        except OSError as exc:
            img = f'<p class="warn">photo {i + 1} unreadable: {esc(exc)}</p>'
        caption = item.captions[i] if i < len(item.captions) else ""
        shots.append(f'<td style="text-align:left;width:20%">{img}<div class="cap">Photo {i + 1}. Human caption '
                     f'(evaluation only): {esc(caption)}</div>{facts_html(seen)}</td>')
    cols = []
    for name, d in item.dialogues:
        body = "".join(turn_html(t) for t in d.dialogue.turns) or f'<p class="warn">{esc(d.error or "no turns")}</p>'
        cols.append(f'<td class="turns" style="text-align:left"><h4>{esc(name)}</h4>{body}</td>')
    return (f"<h3>Story {esc(item.story_id)}</h3><table class=\"side\"><tr>{''.join(shots)}</tr></table>"
            f"<table class=\"side\"><tr>{''.join(cols)}</tr></table>")


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _with_ci(value: float | None, ci: Sequence[float | None], digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f} [{_num(ci[0], digits)}, {_num(ci[1], digits)}]"


def _digits(metric: str) -> int:
    return 1 if metric.endswith(("avg_turn_length", "switch_rate")) else 3


def _role(results: dict, name: str) -> str:
    roles = [r for r in ("tuned", "bigger_base", "small_base") if results.get(r) == name]
    if results["systems"][name].get("reference"):
        roles.append("reference")
    return ", ".join(r.replace("_", " ") for r in roles)


def notes(results: dict) -> list[str]:
    out = []
    for name, s in results["systems"].items():
        base = " — a BASE model (pretrained, not instruction-tuned)" if s.get("is_base_model") else ""
        out.append(f"{name}: weights {s['weights']}; saw {s['saw']}{base}.")
    out.append("No vision-language weights exist offline: models run here saw what each system's 'saw' says "
               "(perception facts or captions as text, not pixels). The paper's references saw the photos; their "
               "text is the published one. Human captions are used to evaluate.")
    plan = results["plan"]
    out.append(f"Plan v{plan['version']} ({plan['path']}, sha256 {plan['sha256'][:12]}…), fixed before the run.")
    g = results["grounding"]
    out.append(f"Caption grounding: {g['weights']} sentence embeddings; aligned_grounding.margin = each scene's turns "
               "against its own photo's caption minus against the story's other captions; a photo counts as "
               f"discussed (coverage) when some turn reaches cosine {g['threshold']} with its caption.")
    b = results["bootstrap"]
    out.append(f"Intervals: 95% {b['interval']} bootstrap with the {b['unit']} as unit ({b['n_resamples']} "
               f"resamples, seed {b['seed']}); differences are paired by story.")
    return out


def _plot(results: dict, metrics: Sequence[str]) -> bytes:
    names = list(results["systems"])
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        values, lows, highs = [], [], []
        for name in names:
            s = results["systems"][name]
            v, (lo, hi) = s[metric], s[f"{metric}_ci"]
            values.append(v if v is not None else 0.0)
            lows.append(0.0 if v is None or lo is None else v - lo)
            highs.append(0.0 if v is None or hi is None else hi - v)
        colours = ["#c0392b" if n == results["tuned"] else "#95a5a6" if results["systems"][n].get("reference")
                   else "#2e86c1" for n in names]
        ax.bar(range(len(names)), values, yerr=[lows, highs], capsize=4, color=colours)
        for i, name in enumerate(names):
            if results["systems"][name][metric] is None:
                ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=7, color="#777")
        ax.set_xticks(range(len(names)), [n if len(n) < 22 else n[:20] + "…" for n in names], rotation=35,
                      ha="right", fontsize=7)
        ax.set_title(metric, fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


def render(results: dict, showcase: Sequence[Showcase] = ()) -> str:
    metrics = [m for m in results["metrics"] if any(s.get(m) is not None for s in results["systems"].values())]
    gate = results["gate"]
    parts = [notes_box(notes(results))]
    reasons = "".join(f"<li>{esc(r)}</li>" for r in gate["reasons"])
    parts.append(f"<h2>Gate decision: {esc(gate['decision'].upper())}</h2><p>adapter {esc(gate['adapter'])}, "
                 f"candidate {esc(gate['candidate'])} against the bigger base {esc(gate['baseline'])} and the "
                 f"active {esc(gate.get('active', ''))}.</p><ul>{reasons}</ul>"
                 f"<p class=\"cap\">Policy: {esc(gate['policy'])}</p>")
    rows = [[name, _role(results, name), s["n_stories"]]
            + [_with_ci(s[m], s[f"{m}_ci"], _digits(m)) for m in metrics] for name, s in results["systems"].items()]
    parts.append("<h2>Systems (mean [95% CI])</h2>"
                 + table(["System", "Role", "Stories", *metrics], rows, left=2))
    parts.append(png_img(_plot(results, metrics), "each metric per system with 95% intervals"))
    comp_rows = [[f"{results['tuned']} − {other}"]
                 + [_with_ci(d[m]["estimate"], d[m]["ci"], _digits(m)) for m in metrics]
                 for other, d in results["comparisons"].items()]
    parts.append("<h2>Differences, tuned − other (paired by story, BCa 95%)</h2>"
                 + table(["Comparison", *metrics], comp_rows))
    t = results["targets"]
    target_rows = [[m, _num(v["value"]), f"{_num(v['lowest'])}–{_num(v['highest'])}", "yes" if v["met"] else "NO"]
                   for m, v in t["tuned"].items()]
    target_rows.append([f"beats {results['bigger_base']}", "", "the plan's decision rule",
                        "yes" if t["beats_bigger_base"]["met"] else "NO"])
    parts.append("<h2>Targets (the plan)</h2>" + table(["Target", "Tuned", "Range", "Met"], target_rows))
    style_rows = []
    for name, s in results["systems"].items():
        style_rows.append([name, "paper"] + [_num(s["style_paper"].get(f), 3) for f in PAPER_FIELDS])
        style_rows.append([name, "robust"] + [_num(s["style_robust"].get(f), 3) for f in PAPER_FIELDS])
    parts.append("<h2>The paper's style table, paper and robust modes (means over all stories)</h2>"
                 + table(["System", "Mode", *PAPER_FIELDS], style_rows, left=2))
    invalid = [[name, f'{s["n_dialogues"] - s["n_valid"]} of {s["n_dialogues"]}',
                ", ".join(f"{k}: {v}" for k, v in s["invalid_reasons"].items())]
               for name, s in results["systems"].items()]
    parts.append("<h2>Why dialogues were invalid</h2>" + table(["System", "Invalid", "Reasons (dialogues)"], invalid))
    if showcase:
        parts.append("<h2>Stories side by side (first dialogue of each system: first adapter, first seed)</h2>"
                     + "".join(showcase_html(item) for item in showcase))
    return page("vispod: the paper in miniature", "".join(parts))
