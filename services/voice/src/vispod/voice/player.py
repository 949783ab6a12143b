"""An HTML audio player for a rendered podcast that highlights the turn being spoken (for reports).

`audio_player_html(podcast, audio_src, texts)` returns one self-contained fragment: an <audio> element, the
turns as a list (each with its start and end from PodcastRendered.turns), a small script that marks the
current turn on `timeupdate` and seeks to a turn when it is clicked. No external resources.
`podcast_player(dialogue, out_dir)` renders the podcast in-process first (for the demo's report).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vispod.v1 import common_pb2, events_pb2
from vispod.voice.engines import build_engine
from vispod.voice.podcast import Podcaster, describe
from vispod.voice.settings import VoiceSettings

_STYLE = (".vp-turns{list-style:none;padding:0}.vp-turns li{padding:.2em .4em;border-radius:4px;cursor:pointer}"
          ".vp-turns li.vp-now{background:#fff3b0}.vp-turns .vp-who{font-weight:600;margin-right:.4em}")
_SCRIPT = """(function(){var p=document.getElementById(%(id)s);var a=p.querySelector('audio');
var items=p.querySelectorAll('li[data-start]');a.addEventListener('timeupdate',function(){var t=a.currentTime;
items.forEach(function(li){var on=t>=+li.dataset.start&&t<+li.dataset.end;li.classList.toggle('vp-now',on);});});
items.forEach(function(li){li.addEventListener('click',function(){a.currentTime=+li.dataset.start;a.play();});});
})();"""


def audio_player_html(podcast: events_pb2.PodcastRendered, audio_src: str, texts: Sequence[str] = (),
                      element_id: str = "vispod-podcast") -> str:
    """`audio_src`: a URL or relative path the page can load (e.g. the .opus copied next to the report);
    `texts`: each turn's text by turn index (optional: without it only speakers and times are listed)."""
    voices = {v.speaker: v.voice for v in podcast.voices}
    items = []
    for turn in podcast.turns:
        text = texts[turn.index] if turn.index < len(texts) else ""
        title = f"{turn.speaker} ({voices.get(turn.speaker, '?')}), {turn.start_seconds:.1f}-{turn.end_seconds:.1f} s"
        items.append(f'<li data-start="{turn.start_seconds:.3f}" data-end="{turn.end_seconds:.3f}" '
                     f'title="{html.escape(title)}"><span class="vp-who">{html.escape(turn.speaker)}</span>'
                     f"{html.escape(text)}</li>")
    chapters = "".join(f'<li data-start="{c.start_seconds:.3f}" data-end="{c.start_seconds:.3f}">'
                       f"{html.escape(c.title)} ({c.start_seconds:.0f} s)</li>" for c in podcast.chapters)
    if chapters:
        chapters = f'<details><summary>Chapters</summary><ul class="vp-turns">{chapters}</ul></details>'
    return (f'<div class="vp-player" id="{html.escape(element_id)}"><style>{_STYLE}</style>'
            f'<audio controls preload="metadata" src="{html.escape(audio_src)}"></audio>{chapters}'
            f'<ol class="vp-turns">{"".join(items)}</ol>'
            f"<script>{_SCRIPT % {'id': json.dumps(element_id)}}</script></div>")


def podcast_player(dialogue: common_pb2.Dialogue, out_dir: Path, images: Sequence[common_pb2.ImageRef] = (),
                   settings: VoiceSettings | None = None) -> str:
    """Renders the dialogue in-process to <out_dir>/podcast.opus and returns the player for a page saved in
    out_dir (the audio is referenced relatively). Raises DialogueError / EngineError with the reason."""
    # Rendered once, in the foreground: every core speaks a turn (the service's default is one per replica).
    settings = settings or VoiceSettings(consume=False, synthesis_workers=min(4, os.cpu_count() or 1))
    engine = build_engine(settings)
    try:
        podcaster = Podcaster(engine, settings)
        plan = podcaster.plan(dialogue, images=images)
        with tempfile.TemporaryDirectory(prefix="vispod-player-") as tmp:
            rendered = podcaster.render_to(plan, Path(tmp))
            out_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(str(rendered.opus), out_dir / "podcast.opus")
    finally:
        engine.close()
    podcast = describe(rendered, plan, engine.name, "podcast.opus", "")
    return audio_player_html(podcast, "podcast.opus", [t.text for t in plan.turns])
