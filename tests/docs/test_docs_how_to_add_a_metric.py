"""docs/how-to/add-a-metric.md stays true: its paths exist, and every metric field of MetricsComputed is what the
page says a metric is — a proto field with the metric option, filled by the metrics package, named by a test."""

from __future__ import annotations

import re
from pathlib import Path

from vispod.common.metric_fields import sections
from vispod.metrics import prom

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "how-to" / "add-a-metric.md"


def _words(folder: Path) -> set[str]:
    return {w for p in folder.rglob("*.py") for w in re.findall(r"\w+", p.read_text(encoding="utf-8"))}


def test_every_path_the_page_names_exists() -> None:
    paths = re.findall(r"`((?:protos|services|tests|docs)/[^`\s]+)`", PAGE.read_text(encoding="utf-8"))
    assert len(paths) >= 10
    missing = [p for p in paths if not (REPO / p).exists()]
    assert missing == [], f"docs/how-to/add-a-metric.md names paths that do not exist: {missing}"


def test_every_metric_field_has_its_function_its_test_and_its_instrument() -> None:
    source = _words(REPO / "services" / "metrics" / "src" / "vispod" / "metrics")
    tests = _words(REPO / "tests" / "metrics")
    found = 0
    for section, fields in sections().items():
        for field in fields:
            found += 1
            assert field.name in source, f"{field.key}: no code in the metrics package fills it (step 2)"
            assert field.name in tests, f"{field.key}: no metrics test names it (step 3)"
            if section in prom.OBSERVED:
                assert field.name in prom.INSTRUMENTS[section], f"{field.key}: no Prometheus instrument"
    assert found >= 30
    assert set(prom.OBSERVED) == set(sections()) - {"paper_style"}  # a new section is observed too
