"""The runbook's table of refusals names settings that exist and log lines the code writes."""

from __future__ import annotations

import re
from pathlib import Path

from vispod.common.settings import GrpcTlsSettings, ImageAccessSettings

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = (REPO / "docs" / "runbook.md").read_text(encoding="utf-8")
SECTION = RUNBOOK.split("## What is refused, and what opens it", 1)[1].split("\n## ", 1)[0]
SOURCES = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "services").rglob("*.py"))


def test_every_setting_named_exists() -> None:
    fields = {"VISPOD_IMAGES_": ImageAccessSettings.model_fields, "VISPOD_GRPC_TLS_": GrpcTlsSettings.model_fields}
    named = set(re.findall(r"VISPOD_(?:IMAGES|GRPC_TLS)_[A-Z0-9_]+", SECTION))
    assert len(named) >= 10
    missing = [n for n in named for prefix, model in fields.items()
               if n.startswith(prefix) and n[len(prefix):].lower() not in model]
    assert missing == []


def test_every_log_line_quoted_is_written_by_the_code() -> None:
    quoted = re.findall(r'"msg": "([^"]+)"', SECTION)
    quoted += [q for q in re.findall(r"log `([^`]+)`", SECTION) if not q.startswith("\"msg\"")]
    assert {"request refused", "dead letter", "admin RPC refused"} <= set(quoted)
    assert [q for q in quoted if q not in SOURCES] == []
    for console in ("restarting it in", "ready again", "GIVING UP", "admin RPCs are OPEN to any caller"):
        assert console in SECTION and console in SOURCES
