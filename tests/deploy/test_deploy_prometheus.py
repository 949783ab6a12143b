"""Prometheus: promtool checks and unit tests of the alert rules, runbook links, and a real Prometheus
server scraping a running vispod service (the shared runtime's gRPC + /metrics) and alerting on it."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from deploy_tools import PROMETHEUS_DIR, REPO, find_tool, free_port, run, stop_process
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vispod.common.bus import DEAD_LETTERS
from vispod.common.service import GrpcService, Service, ServiceHandle
from vispod.common.settings import ServiceSettings

RULES = PROMETHEUS_DIR / "rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "vispod-dashboard.json"
SERVICE = "deploycheck"  # a service name no other test uses: the metrics registry is process-wide


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def test_promtool_check_rules() -> None:
    out = run([find_tool("promtool"), "check", "rules", str(RULES)])
    assert f"SUCCESS: {len(alert_rules())} rules found" in out


def test_promtool_check_config() -> None:
    run([find_tool("promtool"), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])


def test_promtool_unit_tests_cover_every_alert() -> None:
    run([find_tool("promtool"), "test", "rules", str(PROMETHEUS_DIR / "rules_test.yml")])
    tests = yaml.safe_load((PROMETHEUS_DIR / "rules_test.yml").read_text())["tests"]
    firing = {c["alertname"] for t in tests for c in t.get("alert_rule_test", []) if c.get("exp_alerts")}
    assert firing == {r["alert"] for r in alert_rules()}, "every alert needs a unit test where it fires"


def test_every_alert_links_to_its_runbook_section() -> None:
    runbook = (REPO / "docs" / "runbook.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", runbook, flags=re.M)}
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbook.md", rule["alert"]
        assert anchor == rule["alert"].lower() and anchor in anchors, f"{rule['alert']}: no section #{anchor}"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def wait_for(self, what: str, check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(0.5)
        pytest.fail(f"Prometheus: timed out waiting for {what}", pytrace=False)


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceHandle]:
    """A real vispod service from the shared runtime: gRPC (health, reflection, metrics) + /metrics."""
    settings = ServiceSettings(service_name=SERVICE, grpc_port=0, metrics_port=0, consume=False)
    handle = Service(settings, grpc=[GrpcService("vispod.v1.DeployCheck", lambda server: None)]).start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def prometheus(service: ServiceHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """The Debian/upstream Prometheus server with this repo's rules, scraping the service every second."""
    folder: Path = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{
            "job_name": "vispod", "honor_labels": True,
            "static_configs": [{"targets": [f"127.0.0.1:{service.metrics_port}"], "labels": {"service": SERVICE}}],
        }],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(folder / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [find_tool("prometheus"), f"--config.file={folder / 'prometheus.yml'}",
         f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT)
    prom = Prometheus(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not start:\n{(folder / 'prometheus.log').read_text()[-3000:]}",
                            pytrace=False)
            time.sleep(0.2)
        yield prom
    finally:
        stop_process(proc, timeout=10)
        log.close()


def test_prometheus_scrapes_a_running_service(service: ServiceHandle, prometheus: Prometheus) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(3):
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    up = prometheus.wait_for("the target to be up", lambda: prometheus.query(f'up{{service="{SERVICE}"}} == 1'))
    assert up[0]["metric"]["job"] == "vispod"
    expr = f'sum by (service, code) (vispod_grpc_requests_total{{service="{SERVICE}"}})'
    result = prometheus.wait_for("the health checks to be counted",
                                 lambda: [r for r in prometheus.query(expr) if float(r["value"][1]) >= 3])
    assert result[0]["metric"] == {"service": SERVICE, "code": "OK"}


def test_rules_load_and_a_dead_letter_fires_its_alert(prometheus: Prometheus) -> None:
    child = DEAD_LETTERS.labels(SERVICE, "invalid")  # the series exists at 0 before the first dead letter
    prometheus.wait_for("the zero series to be scraped", lambda: prometheus.query(
        f'vispod_bus_dead_letters_total{{service="{SERVICE}", reason="invalid"}}'))
    child.inc()

    def firing() -> list[dict]:
        return [a for a in prometheus.get("/api/v1/alerts")["alerts"]
                if a["labels"]["alertname"] == "VispodDeadLettersArriving" and a["labels"].get("service") == SERVICE
                and a["state"] == "firing"]

    alert = prometheus.wait_for("VispodDeadLettersArriving to fire", firing)[0]
    assert alert["labels"]["reason"] == "invalid"
    assert alert["annotations"]["runbook_url"] == "docs/runbook.md#vispoddeadlettersarriving"
    rules = [r for g in prometheus.get("/api/v1/rules")["groups"] for r in g["rules"]]
    assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, f"rules failing to evaluate: {bad}"


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    return exprs


def test_dashboard_shape() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "vispod-overview"
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for topic in ("events consumed", "latency", "lag", "dead letters", "win rate", "per system"):
        assert topic in titles, topic
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_queries_run_on_prometheus(prometheus: Prometheus) -> None:
    """Each panel's PromQL, with Grafana's variables filled in, is accepted by the real query engine."""
    for expr in dashboard_exprs():
        concrete = expr.replace("$__rate_interval", "1m").replace("$service", ".*")
        try:
            prometheus.query(concrete)
        except urllib.error.HTTPError as exc:
            pytest.fail(f"{expr!r}: {exc.read().decode()[:500]}", pytrace=False)
