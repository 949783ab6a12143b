"""`vispod eval`'s report: the evaluation table as Markdown, CSV and HTML with plots. The one-dialogue report of
`vispod demo` is vispod.evaluation.story_report; the gate's decisions page is vispod.gate.decisions_report.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from vispod.evaluation.runner import GROUNDING_FIELDS, PAPER_FIELDS, ROBUST_FIELDS, TEXT_FIELDS, EvalResult, JudgeCell
from vispod.gate.html_parts import esc, figure_png, new_figure, notes_box, page, png_img, table, write_atomic

# The paper's published means (FACTS.md): fine-tuned Qwen3-VL-32B vs Qwen3-VL-235B base.
PUBLISHED: dict[str, dict[str, float]] = {
    "qwen3-vl-32b-sporc-lora": {"words": 972.1, "distinct_2": 0.815, "avg_turn_length": 57.5, "switch_rate": 16.0,
                                "num_turns": 15.8, "clipscore": 20.39},
    "qwen3-vl-235b-base": {"words": 918.6, "distinct_2": 0.854, "avg_turn_length": 38.0, "switch_rate": 27.0,
                           "num_turns": 24.5, "clipscore": 20.39},
}
# Display names only; which metrics exist comes from the proto descriptors (runner.py's field lists).
LABELS = {
    "words": "Words", "distinct_2": "Distinct-2", "avg_turn_length": "Avg turn length (words)",
    "switch_rate": "Switch rate (/1,000 words)", "num_turns": "Turns", "num_speakers": "Speakers",
    "speaker_balance": "Speaker balance (entropy)", "longest_monologue_share": "Longest monologue share",
    "question_rate": "Question rate", "repeated_4gram_rate": "Repeated 4-gram rate",
    "image_mention_rate": "Image-mention rate", "clipscore": "CLIPScore (whole dialogue, 100·cos)",
    "clipscore_hessel": "CLIPScore (Hessel, 2.5·cos)", "paper_clipscore": "CLIPScore (paper: first 500 chars)",
    "retrieval_accuracy": "Grounding retrieval accuracy", "retrieval_accuracy_distractors":
        "Retrieval accuracy (with distractors)",
}
# Published precision: the paper's table rounds to these decimals.
DECIMALS = {"words": 1, "distinct_2": 3, "avg_turn_length": 1, "switch_rate": 1, "num_turns": 1, "clipscore": 2,
            "paper_clipscore": 2, "clipscore_hessel": 3}


def label(name: str) -> str:
    """A metric's display name: a nicer one where written, else the proto field's name."""
    return LABELS.get(name, name)


def fmt(name: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{DECIMALS.get(name, 3)}f}"


@dataclass
class EvalReport:
    markdown: Path
    html: Path
    per_story_csv: Path
    summary_csv: Path
    json: Path


# --- tables (shared by Markdown and HTML) --------------------------------------------------
def paper_table(result: EvalResult) -> tuple[list[str], list[list[str]]]:
    """The paper's table in paper mode (+ the published means when the systems are the paper's)."""
    headers = ["Metric"]
    for s in result.systems:
        headers.append(f"{s} (paper mode)")
        if s in PUBLISHED:
            headers.append(f"{s} (published)")
    rows = []
    for name in PAPER_FIELDS:
        row = [label(name)]
        for s in result.systems:
            row.append(fmt(name, result.mean(s, "paper", name)))
            if s in PUBLISHED:
                row.append(fmt(name, PUBLISHED[s][name]))
        rows.append(row)
    row = [label("paper_clipscore") + _random_suffix(result)]
    for s in result.systems:
        row.append(fmt("paper_clipscore", result.mean(s, "grounding", "paper_clipscore")))
        if s in PUBLISHED:
            row.append(fmt("clipscore", PUBLISHED[s]["clipscore"]))
    rows.append(row)
    return headers, rows


def robust_table(result: EvalResult) -> tuple[list[str], list[list[str]]]:
    headers = ["Metric"] + [f"{s} ({mode})" for s in result.systems for mode in ("paper", "robust")]
    rows = []
    for name in ROBUST_FIELDS:
        row = [label(name)]
        for s in result.systems:
            row.append(fmt(name, result.mean(s, "paper", name)) if name in PAPER_FIELDS else "–")
            row.append(fmt(name, result.mean(s, "robust", name)))
        rows.append(row)
    return headers, rows


def grounding_table(result: EvalResult) -> tuple[list[str], list[list[str]]]:
    headers = ["Metric"] + [s for s in result.systems]
    rows = [[label(n) + _random_suffix(result)] + [fmt(n, result.mean(s, "grounding", n)) for s in result.systems]
            for n in GROUNDING_FIELDS]
    rows.append(["Stories scored"] + [str(result.count(s, "grounding")) for s in result.systems])
    return headers, rows


def judge_table(result: EvalResult) -> tuple[list[str], list[list[str]]]:
    headers = ["A vs B", "Judge", "Criterion", "Wins", "Ties", "Losses", "Invalid", "Win rate (tie = ½)",
               "95% Wilson CI", "Decisive win rate", "95% CI (decisive)"]
    rows = [[f"{c.system_a} vs {c.system_b}", c.judge, c.criterion, c.rate.wins, c.rate.ties, c.rate.losses,
             c.rate.invalid, f"{c.rate.rate:.3f}", f"{c.rate.lower:.3f}–{c.rate.upper:.3f}",
             f"{c.rate_excl_ties.rate:.3f}", f"{c.rate_excl_ties.lower:.3f}–{c.rate_excl_ties.upper:.3f}"]
            for c in result.judges]
    return headers, rows


def text_table(result: EvalResult) -> tuple[list[str], list[list[str]]]:
    """What the metrics service computes from the text, captions and facts (no pixels), where it computed it."""
    headers = ["Metric", *result.systems]
    rows = [[n, *(fmt(n, result.mean(s, "text", n)) for s in result.systems)] for n in TEXT_FIELDS
            if any(result.count_of(s, "text", n) for s in result.systems)]
    return headers, rows


def _random_suffix(result: EvalResult) -> str:
    return " [random weights]" if result.grounding_random else ""


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# --- writers ---------------------------------------------------------------------------------
def _header_lines(result: EvalResult) -> list[str]:
    return [f"Evaluation set: `{result.set_dir}` — {result.stories} stories; systems: {', '.join(result.systems)}."]


def _published_note(result: EvalResult) -> list[str]:
    shown = [s for s in result.systems if s in PUBLISHED]
    partial = [s for s in shown if result.count(s, "paper") != 50]
    return [f"The published means are over the paper's 50 stories; here {result.count(s, 'paper')} transcripts of "
            f"{s} were scored." for s in partial]


def render_markdown(result: EvalResult) -> str:
    parts = ["# vispod evaluation", "", *_header_lines(result), ""]
    notes = [*result.notes, *_published_note(result)]
    if notes:
        parts += ["**Read this first:**", ""] + [f"- **{n}**" for n in notes] + [""]
    parts += ["## The paper's table (paper-mode definitions)", "", markdown_table(*paper_table(result)), "",
              "## Style: paper mode beside robust mode", "",
              "Robust mode parses speaker labels as people write them and counts real changes of speaker.", "",
              markdown_table(*robust_table(result)), "", "## Grounding" + _grounding_title(result), "",
              markdown_table(*grounding_table(result)), "",
              "## Text metrics (format from the text alone, aligned grounding, hallucination, naturalness)", "",
              markdown_table(*text_table(result)), ""]
    parts += ["## Judges", ""]
    if result.judges:
        parts += [markdown_table(*judge_table(result)), ""]
    else:
        parts += ["No judges configured (`--judges`).", ""]
    return "\n".join(parts)


def _grounding_title(result: EvalResult) -> str:
    models = sorted({s.clip_model for s in result.scores if s.clip_model})
    label = f" ({', '.join(models)})" if models else ""
    return label + (" — RANDOM WEIGHTS: these numbers measure nothing" if result.grounding_random else "")


def write_csvs(result: EvalResult, per_story: Path, summary: Path) -> None:
    per_story.parent.mkdir(parents=True, exist_ok=True)
    fields = (["story_id", "system"] + [f"paper_{n}" for n in PAPER_FIELDS] + [f"robust_{n}" for n in ROBUST_FIELDS]
              + [f"grounding_{n}" for n in GROUNDING_FIELDS] + ["grounding_random_weights", "clip_model"])
    with per_story.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        for s in result.scores:
            g = s.grounding or {}
            writer.writerow([s.story_id, s.system] + [s.paper.get(n, "") for n in PAPER_FIELDS]
                            + [s.robust.get(n, "") for n in ROBUST_FIELDS] + [g.get(n, "") for n in GROUNDING_FIELDS]
                            + ["" if s.random_weights is None else str(s.random_weights).lower(), s.clip_model])
    with summary.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["section", "metric", "system", "mean", "stories", "published"])
        for section, names in (("paper", PAPER_FIELDS), ("robust", ROBUST_FIELDS), ("grounding", GROUNDING_FIELDS),
                               ("text", TEXT_FIELDS)):
            for name in names:
                for system in result.systems:
                    published = PUBLISHED.get(system, {}).get(name, "") if section == "paper" else ""
                    mean = result.mean(system, section, name)
                    writer.writerow([section, name, system, "" if math.isnan(mean) else f"{mean:.6f}",
                                     result.count(system, section), published])
        for c in result.judges:
            writer.writerow(["judge", f"{c.judge}/{c.criterion}", f"{c.system_a} vs {c.system_b}",
                             f"{c.rate.rate:.6f}", int(c.rate.n), f"{c.rate.lower:.6f}–{c.rate.upper:.6f}"])


def _json_doc(result: EvalResult) -> dict:
    def clean(v: float) -> float | None:
        return None if isinstance(v, float) and math.isnan(v) else v

    return {
        "set": str(result.set_dir), "stories": result.stories, "systems": result.systems, "notes": result.notes,
        "grounding_random_weights": result.grounding_random,
        "means": {s: {sec: {n: clean(result.mean(s, sec, n)) for n in names}
                      for sec, names in (("paper", PAPER_FIELDS), ("robust", ROBUST_FIELDS),
                                         ("grounding", GROUNDING_FIELDS), ("text", TEXT_FIELDS))}
                  for s in result.systems},
        "judges": [_judge_json(c) for c in result.judges],
    }


def _judge_json(c: JudgeCell) -> dict:
    return {"system_a": c.system_a, "system_b": c.system_b, "judge": c.judge, "criterion": c.criterion,
            "wins": c.rate.wins, "ties": c.rate.ties, "losses": c.rate.losses, "invalid": c.rate.invalid,
            "win_rate": c.rate.rate, "win_rate_lower": c.rate.lower, "win_rate_upper": c.rate.upper,
            "win_rate_excl_ties": c.rate_excl_ties.rate}


# --- plots -----------------------------------------------------------------------------------
def _style_plot(result: EvalResult) -> bytes:
    names = ("avg_turn_length", "switch_rate", "num_turns")
    fig, axes = new_figure(11, 3.2, ncols=len(names))
    width = 0.8 / max(1, len(result.systems))
    for ax, name in zip(axes, names, strict=True):
        for i, system in enumerate(result.systems):
            values = [result.mean(system, "paper", name), result.mean(system, "robust", name)]
            ax.bar([x + i * width for x in (0, 1)], [0 if math.isnan(v) else v for v in values], width,
                   label=system)
        ax.set_xticks([x + width * (len(result.systems) - 1) / 2 for x in (0, 1)], ["paper mode", "robust"])
        ax.set_title(label(name), fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, bbox_to_anchor=(0.5, -0.08))
    return figure_png(fig)


def _per_story_plot(result: EvalResult) -> bytes:
    fig, axes = new_figure(11, 3.2, ncols=2)
    for ax, (section, name) in zip(axes, (("robust", "avg_turn_length"), ("paper", "words")), strict=True):
        data = [[s.__dict__[section][name] for s in result.of(system)] or [0] for system in result.systems]
        ax.boxplot(data, tick_labels=result.systems)
        ax.set_title(f"{label(name)} per story ({section})", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    return figure_png(fig)


def _grounding_plot(result: EvalResult) -> bytes:
    fig, ax = new_figure(6, 3.2)
    data = [[s.grounding["clipscore"] for s in result.of(system) if s.grounding] or [0] for system in result.systems]
    ax.boxplot(data, tick_labels=result.systems)
    ax.set_title("CLIPScore per story" + _random_suffix(result), fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    return figure_png(fig)


def _judge_plot(result: EvalResult) -> bytes:
    fig, ax = new_figure(8, 0.5 + 0.4 * len(result.judges))
    labels = [f"{c.judge} / {c.criterion}" for c in result.judges]
    rates = [c.rate.rate for c in result.judges]
    err = [[c.rate.rate - c.rate.lower for c in result.judges], [c.rate.upper - c.rate.rate for c in result.judges]]
    ax.errorbar(rates, range(len(labels)), xerr=err, fmt="o", capsize=3)
    ax.axvline(0.5, color="grey", linestyle="--")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"win rate of {result.systems[0]} (tie = ½), 95% Wilson interval")
    return figure_png(fig)


def render_html(result: EvalResult) -> str:
    body = [f"<p>{esc(_header_lines(result)[0])}</p>", notes_box([*result.notes, *_published_note(result)]),
            "<h2>The paper's table (paper-mode definitions)</h2>", table(*paper_table(result)),
            "<h2>Style: paper mode beside robust mode</h2>",
            "<p>Robust mode parses speaker labels as people write them and counts real changes of speaker.</p>",
            table(*robust_table(result)), png_img(_style_plot(result), "style metrics, paper vs robust"),
            png_img(_per_story_plot(result), "per-story distributions"),
            f"<h2>Grounding{esc(_grounding_title(result))}</h2>", table(*grounding_table(result)),
            "<h2>Text metrics</h2>", table(*text_table(result))]
    if any(s.grounding for s in result.scores):
        body.append(png_img(_grounding_plot(result), "CLIPScore per story"))
    body.append("<h2>Judges</h2>")
    if result.judges:
        body += [table(*judge_table(result), left=3), png_img(_judge_plot(result), "win rates")]
    else:
        body.append("<p>No judges configured (<code>--judges</code>).</p>")
    return page("vispod evaluation", "".join(body))


def write_eval_report(result: EvalResult, out_dir: Path) -> EvalReport:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = EvalReport(out_dir / "eval.md", out_dir / "eval.html", out_dir / "eval_per_story.csv",
                        out_dir / "eval_summary.csv", out_dir / "eval.json")
    write_atomic(report.markdown, render_markdown(result))
    write_atomic(report.html, render_html(result))
    write_csvs(result, report.per_story_csv, report.summary_csv)
    write_atomic(report.json, json.dumps(_json_doc(result), indent=2))
    return report
