"""One dialogue as a self-contained HTML page (used by `vispod demo`): photos beside the turns that discuss them,
the metrics, the judgement, a plot, and — first and prominently — notes on which models were real."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from vispod.common.metric_fields import PAPER_TABLE, sections, values
from vispod.common.what_was_seen import seen_note
from vispod.gate.html_parts import esc, figure_png, new_figure, notes_box, page, photo_img, png_img, table, write_atomic
from vispod.v1 import common_pb2, events_pb2


def _num(v: float) -> str:
    return "–" if isinstance(v, float) and math.isnan(v) else (f"{v:.3f}" if isinstance(v, float) else str(v))


def turn_html(turn: common_pb2.Turn) -> str:
    badges = "".join(f'<span class="badge">photo {i + 1}</span>' for i in turn.image_refs)
    return f'<div class="turn"><span class="spk">{esc(turn.speaker)}:</span> {esc(turn.text)}{badges}</div>'


def boxes_html(facts: common_pb2.Perception) -> str:
    """The detected objects as boxes over the photo (positions in % of the photo, as the boxes are normalised)."""
    out = []
    for o in facts.objects:
        b = o.box
        style = (f"left:{100 * b.x_min:.2f}%;top:{100 * b.y_min:.2f}%;width:{100 * (b.x_max - b.x_min):.2f}%;"
                 f"height:{100 * (b.y_max - b.y_min):.2f}%")
        out.append(f'<div class="box" style="{style}"><span>{esc(o.label)} {o.score:.2f}</span></div>')
    return "".join(out)


def facts_html(facts: common_pb2.Perception) -> str:
    """What perception found, and which models found it."""
    if not facts.models:
        return ""
    objects = ", ".join(f"{esc(o.label)} ({o.score:.2f})" for o in facts.objects) or "none"
    rows = [f"<b>Detected objects:</b> {objects}"]
    if facts.text:
        read = ", ".join(f"&ldquo;{esc(t.text)}&rdquo; ({t.score:.2f})" for t in facts.text)
        rows.append(f"<b>Text read:</b> {read}")
    if facts.labels:
        rows.append("<b>Looks like:</b> " + ", ".join(f"{esc(lab.label)} ({lab.score:.2f})" for lab in facts.labels))
    weights = "RANDOM weights" if any(m.random_weights for m in facts.models) else "real weights"
    rows.append(f"<b>Models:</b> {esc(', '.join(m.name for m in facts.models))} ({weights})")
    return '<div class="facts">' + "<br>".join(rows) + "</div>"


def _photos_section(images: Sequence[Path], captions: Sequence[str], turns: Sequence[common_pb2.Turn],
                    facts: Sequence[common_pb2.Perception] = ()) -> str:
    blocks = []
    for i, path in enumerate(images):
        about = [t for t in turns if i in t.image_refs]
        caption = captions[i] if i < len(captions) else ""
        seen = facts[i] if i < len(facts) else common_pb2.Perception()
        turns_html = "".join(turn_html(t) for t in about) or '<p class="cap">No turn refers to this photo.</p>'
        try:
            img = f'<div class="shot">{photo_img(Path(path), f"photo {i + 1}")}{boxes_html(seen)}</div>'
        except OSError as exc:
            img = f'<p class="warn">photo {i + 1} unreadable: {esc(exc)}</p>'
        label = f"Photo {i + 1}: {esc(caption)}" if caption else f"Photo {i + 1} (no caption)"
        blocks.append(f'<div class="photo"><div>{img}<div class="cap">{label}</div></div>'
                      f'<div class="turns">{facts_html(seen)}{turns_html}</div></div>')
    return "".join(blocks)


def _metrics_section(metrics: events_pb2.MetricsComputed) -> str:
    """Every metric section of MetricsComputed that was computed (names from the proto descriptors)."""
    rows = []
    for f in sections()["style"]:
        paper = _num(getattr(metrics.paper_style, f.name)) if f.name in PAPER_TABLE else "–"
        rows.append([f.name, _num(getattr(metrics.style, f.name)), paper])
    out = table(["Style metric", "robust", "paper mode"], rows)
    for section in sections():
        numbers = values(metrics, section) if section not in ("style", "paper_style") else None
        if numbers is None:
            continue
        label = section.replace("_", " ").capitalize()
        if section == "grounding":
            g = metrics.grounding
            label = f"Grounding ({g.clip_model})" + (" — RANDOM WEIGHTS: measures nothing" if g.random_weights else "")
        out += f"<h3>{esc(label)}</h3>" + table(["Metric", "value"], [[n, _num(v)] for n, v in numbers.items()])
    if metrics.warnings:
        out += "<ul>" + "".join(f'<li class="warn">{esc(w)}</li>' for w in metrics.warnings) + "</ul>"
    return out


def _judgement_section(judgement: events_pb2.JudgementCompleted) -> str:
    if judgement.error:
        return f'<p class="warn">{esc(judgement.error)}</p>'
    name = events_pb2.Outcome.Name
    rows = [[v.judge, v.criterion, name(v.outcome).removeprefix("OUTCOME_"), name(v.outcome_ab).removeprefix(
        "OUTCOME_"), name(v.outcome_ba).removeprefix("OUTCOME_"), v.rationale] for v in judgement.verdicts]
    head = f"<p>A = {esc(judgement.system_a)}, B = {esc(judgement.system_b)}</p>"
    return head + table(["Judge", "Criterion", "Outcome", "A first", "B first", "Rationale"], rows, left=6)


def _words_plot(turns: Sequence[common_pb2.Turn]) -> bytes:
    fig, ax = new_figure(8, 3)
    speakers = list(dict.fromkeys(t.speaker for t in turns))
    colours = {s: f"C{i % 10}" for i, s in enumerate(speakers)}
    for i, t in enumerate(turns):
        ax.bar(i + 1, len(t.text.split()), color=colours[t.speaker])
    for s in speakers:
        ax.bar(0, 0, color=colours[s], label=s)
    ax.set_xlabel("turn")
    ax.set_ylabel("words")
    ax.set_title("Words per turn, by speaker", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return figure_png(fig)


def _label(d: events_pb2.DialogueGenerated) -> str:
    return f"{d.model} + adapter {d.adapter_id}" if d.adapter_id else f"{d.model} (base model)"


def _side_by_side(dialogue: events_pb2.DialogueGenerated, other: events_pb2.DialogueGenerated) -> str:
    """Two dialogues of the same story in two columns (e.g. the base model and the tuned one)."""
    cols = []
    for d in (other, dialogue):
        turns = "".join(turn_html(t) for t in d.dialogue.turns) or f'<p class="warn">{esc(d.error or "no turns")}</p>'
        words = sum(len(t.text.split()) for t in d.dialogue.turns)
        cols.append(f'<div class="col"><h3>{esc(_label(d))}</h3><p class="cap">{len(d.dialogue.turns)} turns, '
                    f'{words} words</p>{turns}</div>')
    return f'<div class="cols">{"".join(cols)}</div>'


def render_story_report(out_path: Path, story_dir: Path | None, images: list[Path], captions: list[str],
                        dialogue: events_pb2.DialogueGenerated, metrics: events_pb2.MetricsComputed | None,
                        judgement: events_pb2.JudgementCompleted | None, notes: list[str],
                        compared_with: events_pb2.DialogueGenerated | None = None, audio_html: str = "") -> Path:
    """Writes one self-contained HTML page (photos embedded as downscaled base64 JPEGs) and returns its path."""
    all_notes = list(notes)
    if dialogue.random_weights:
        all_notes.append(f"The dialogue was written by {dialogue.model or 'a model'} with RANDOM weights.")
    all_notes.append(seen_note(dialogue))
    if metrics is not None and metrics.HasField("grounding") and metrics.grounding.random_weights:
        all_notes.append("CLIP weights are RANDOM: the grounding numbers measure nothing.")
    all_notes = list(dict.fromkeys(all_notes))
    turns = list(dialogue.dialogue.turns)
    facts = [["Image set", dialogue.image_set_id], ["System", dialogue.system], ["Model", dialogue.model],
             ["Backend", dialogue.backend], ["Adapter", dialogue.adapter_id or "(base model)"],
             ["Input", events_pb2.InputMode.Name(dialogue.input_mode).removeprefix("INPUT_MODE_").lower()],
             ["Status", common_pb2.Status.Name(dialogue.status).removeprefix("STATUS_")],
             ["Latency (s)", f"{dialogue.latency_seconds:.1f}"]]
    if story_dir is not None:
        facts.insert(0, ["Story folder", str(story_dir)])
    body = [notes_box(all_notes), table(["", ""], facts, left=2)]
    if dialogue.error:
        body.append(f'<p class="warn">Generation failed: {esc(dialogue.error)}</p>')
    if audio_html:
        body += ["<h2>Listen: the podcast, one voice per speaker</h2>", audio_html]
    seen = [ref.perception for ref in dialogue.images]
    body += ["<h2>Photos, what perception found, and the turns that discuss them</h2>",
             _photos_section(images, captions, turns, seen),
             "<h2>The whole dialogue</h2>"]
    body.append("".join(turn_html(t) for t in turns) if turns
                else f"<pre>{esc(dialogue.dialogue.text)}</pre>")
    if turns:
        body.append(png_img(_words_plot(turns), "words per turn by speaker"))
    if compared_with is not None:
        body.append("<h2>Side by side: the same story, same prompt and decoding</h2>")
        body.append(_side_by_side(dialogue, compared_with))
    body.append("<h2>Metrics</h2>")
    body.append(_metrics_section(metrics) if metrics is not None else "<p>No metrics.</p>")
    body.append("<h2>Judgement</h2>")
    body.append(_judgement_section(judgement) if judgement is not None else "<p>No judgement.</p>")
    if dialogue.warnings:
        body.append("<h2>Generator warnings</h2><ul>" + "".join(f"<li>{esc(w)}</li>" for w in dialogue.warnings)
                    + "</ul>")
    return write_atomic(Path(out_path), page(f"vispod — {dialogue.image_set_id or 'dialogue'}", "".join(body)))
