"""The Prometheus rules and the Grafana dashboard are committed once (deploy/); the chart reads them by link."""

from __future__ import annotations

import pytest
from deploy_tools import CHART, REPO


@pytest.mark.parametrize(("chart_file", "source"), [("rules.yml", "deploy/prometheus/rules.yml"),
                                                    ("vispod-dashboard.json", "deploy/grafana/vispod-dashboard.json")])
def test_chart_files_are_links_to_the_one_copy(chart_file: str, source: str) -> None:
    link = CHART / "files" / chart_file
    assert link.is_symlink(), f"{link} must link to {source}, not be a second copy"
    assert link.resolve() == (REPO / source).resolve() and link.resolve().is_file()
    assert f'.Files.Get "files/{chart_file}"' in (CHART / "templates" / "monitoring.yaml").read_text()
