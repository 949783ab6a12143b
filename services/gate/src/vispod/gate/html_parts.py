"""Small building blocks of self-contained HTML pages: escaped tables, base64 images, matplotlib figures."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by services and CLIs
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from PIL import Image

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;
padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
.cols{display:flex;gap:1.5rem}.col{flex:1;min-width:0}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.notes{background:#fff4d6;border:2px solid #e0a800;padding:.6rem 1rem;border-radius:6px}
.notes li{margin:.2rem 0}.warn{color:#a40000;font-weight:600}
.photo{display:flex;gap:1rem;margin:1rem 0;padding:.5rem;border:1px solid #e5e5e5;border-radius:6px}
.photo img{max-width:320px;height:auto;border-radius:4px}.photo .turns{flex:1}
.shot{position:relative;display:inline-block;line-height:0}.shot img{display:block}
.box{position:absolute;border:3px solid #ff00c8;box-sizing:border-box}
.box span{position:absolute;left:0;top:0;background:#ff00c8;color:#fff;font-size:.7rem;line-height:1.2;
  padding:0 .2rem;white-space:nowrap}
.facts{font-size:.85rem;color:#333;margin:.3rem 0}.facts b{font-weight:600}
.turn{margin:.3rem 0}.spk{font-weight:600}.cap{color:#555;font-style:italic;font-size:.9rem}
.badge{display:inline-block;background:#e8eefc;border-radius:3px;padding:0 .3rem;font-size:.75rem;margin-left:.3rem}
img.plot{max-width:100%}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """An HTML table; the first `left` columns are left-aligned (labels), the rest right-aligned (numbers)."""
    head = "".join(f'<th class="{"l" if i < left else ""}">{esc(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{esc(c)}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def notes_box(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return f'<div class="notes"><strong>Read this first</strong><ul>{items}</ul></div>'


def figure_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def png_img(data: bytes, alt: str, css: str = "plot") -> str:
    return f'<img class="{css}" alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def photo_img(path: Path, alt: str, max_side: int = 480) -> str:
    """A photo downscaled and re-encoded as JPEG, embedded as base64 (the page stays self-contained)."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
    return f'<img alt="{esc(alt)}" src="data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>{body}</body></html>")


def new_figure(width: float = 8, height: float = 3.2, ncols: int = 1) -> tuple[Figure, object]:
    return plt.subplots(1, ncols, figsize=(width, height))


def write_atomic(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
