"""Every metric an alert rule or a dashboard panel reads is exported by a running vispod service.

Starts every installed service with `vispod up` (local processes, real broker), scrapes each /metrics,
and checks the names used in deploy/prometheus/rules.yml and the Grafana dashboard (both copies: deploy/
and the Helm chart's files/, which must stay identical) against what the services export.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from deploy_tools import REPO
from prometheus_client.parser import text_string_to_metric_families

from vispod.common.settings import KafkaSettings
from vispod.devkit.local_stack import installed_services

HELM_FILES = REPO / "helm" / "vispod" / "files"
COPIES = [
    (REPO / "deploy" / "prometheus" / "rules.yml", HELM_FILES / "rules.yml"),
    (REPO / "deploy" / "grafana" / "vispod-dashboard.json", HELM_FILES / "vispod-dashboard.json"),
]
_NAME = re.compile(r"\bvispod_[a-z0-9_]*[a-z0-9]")
_ENDPOINT = re.compile(r"^(\w+): grpc 127\.0\.0\.1:\d+ metrics (http://127\.0\.0\.1:\d+/metrics)")
# Series names each metric type exposes (prometheus_client's text format).
_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum", "_created"),
             "summary": ("", "_count", "_sum", "_created"), "info": ("_info",), "stateset": ("",), "unknown": ("",)}


def used_names() -> set[str]:
    return {n for path, _ in COPIES for n in _NAME.findall(path.read_text())}


def exported_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
        names |= {s.name for s in family.samples}
    return names


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`vispod up` with every installed service; remote model engines point at a closed port (not needed here)."""
    workdir = tmp_path_factory.mktemp("up")
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=f"names{os.getpid()}")
    env = {**os.environ, "VISPOD_KAFKA_BOOTSTRAP": kafka.bootstrap, "VISPOD_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "VISPOD_GENERATOR_BACKEND": "tgi", "VISPOD_GENERATOR_TGI_URL": "http://127.0.0.1:9",
           "VISPOD_JUDGE_JUDGES": '["tgi:judge"]', "VISPOD_JUDGE_TGI_URL": "http://127.0.0.1:9",
           "VISPOD_METRICS_GROUNDING_ENABLED": "false", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vispod.common.cli", "up", "--workdir", str(workdir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    endpoints: dict[str, str] = {}
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := _ENDPOINT.match(line):
                endpoints[m.group(1)] = m.group(2)
            if line.startswith("ready"):
                break
        assert lines and lines[-1].startswith("ready"), "".join(lines)
        yield endpoints
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=90)


def test_every_service_is_up(stack: dict[str, str]) -> None:
    assert set(installed_services()) <= set(stack) and {"generator", "metrics", "judge", "gate"} <= set(stack)


def test_every_metric_in_the_rules_and_the_dashboard_is_exported(stack: dict[str, str]) -> None:
    exported: set[str] = set()
    for url in stack.values():
        with urllib.request.urlopen(url, timeout=10) as resp:
            exported |= exported_names(resp.read().decode())
    missing = sorted(used_names() - exported)
    assert not missing, f"used by alerts or panels but exported by no service: {missing}"
    assert "vispod_judge_win_rate" in exported


def test_deploy_and_helm_copies_are_identical() -> None:
    for deploy, helm in COPIES:
        assert deploy.read_text() == helm.read_text(), f"{helm} differs from {deploy}"


def test_the_name_check_sees_every_kind_of_series() -> None:
    text = ("# HELP vispod_x_seconds d\n# TYPE vispod_x_seconds histogram\n"
            "# HELP vispod_y_total d\n# TYPE vispod_y_total counter\n# HELP vispod_z d\n# TYPE vispod_z gauge\n")
    assert {"vispod_x_seconds_bucket", "vispod_x_seconds_count", "vispod_y_total", "vispod_z"} <= exported_names(text)
    assert "vispod_metrics_clipscore_score_bucket" in used_names()

