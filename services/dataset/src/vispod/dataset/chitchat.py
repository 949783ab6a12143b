"""The Chit-Chat Challenge corpus (PyPI `chitchat-dataset`, MIT) as an offline source of real dialogue.

7,168 real two-person text conversations (1,178 of them with ≥ 600 words). They are typed chats, not
podcasts, and carry no visual focus: a stand-in for demos where SPoRC is absent, never a substitute
for it. Format of its `dataset.json`: {conversation id: {"messages": [[{"text", "timestamp",
"sender"}, …], …], "ratings", "start", "prompt"}} — each inner list is one sender's consecutive
messages. Read as episodes in the SPoRC model: one turn per message group, language "en", no
explicit or overlap metadata.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

from vispod.dataset.episodes import LoadReport, SporcEpisode, SporcTurn

PACKAGE = "chitchat_dataset"


def installed_path() -> Path | None:
    """dataset.json of the installed package (found without importing it), or None."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "dataset.json"
    return path if path.is_file() else None


def is_chitchat_file(path: Path) -> bool:
    if not (path.is_file() and path.suffix == ".json"):
        return False
    with path.open(encoding="utf-8") as fh:
        head = fh.read(4096)
    return head.lstrip().startswith("{") and '"messages"' in head


def iter_chitchat(path: Path, report: LoadReport) -> Iterator[SporcEpisode]:
    report.layout = "chitchat"
    data = json.loads(path.read_text(encoding="utf-8"))
    for conv_id in sorted(data):
        conv = data[conv_id]
        groups = conv.get("messages") if isinstance(conv, dict) else None
        if not isinstance(groups, list):
            report.bad("conversation_without_messages", conv_id)
            continue
        turns: list[SporcTurn] = []
        for g, group in enumerate(groups):
            if not isinstance(group, list) or not group:
                report.bad("empty_message_group", f"{conv_id}#{g}")
                continue
            texts = [m.get("text") for m in group if isinstance(m, dict)]
            senders = {m.get("sender") for m in group if isinstance(m, dict)}
            if len(senders) != 1 or not all(isinstance(t, str) for t in texts) or not texts:
                report.bad("bad_message_group", f"{conv_id}#{g}")
                continue
            turns.append(SporcTurn(speaker=str(senders.pop()), text=" ".join(texts)))
            report.turns_read += 1
        report.episodes_read += 1
        yield SporcEpisode(
            episode_id=conv_id,
            mp3url="",
            podcast_id="chitchat",
            title=str(conv.get("prompt", "")),
            language="en",
            turns=turns,
        )
