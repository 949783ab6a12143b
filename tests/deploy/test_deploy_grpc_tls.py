"""Helm wires gRPC TLS: mutual TLS from one Secret, admin RPCs closed unless a named client presents its
certificate, probes that work behind TLS."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from deploy_tools import Rendered

GRPC_SERVERS = {"synth", "generator", "judge", "metrics", "voice"}


def _workloads(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"}


def test_default_render_keeps_admin_rpcs_closed(helm_template: Callable[..., str]) -> None:
    rendered = Rendered.of(helm_template())
    assert rendered.common["VISPOD_GRPC_TLS_ADMIN_OPEN_WITHOUT_MTLS"] == "false"
    assert "VISPOD_GRPC_TLS_CERT_FILE" not in rendered.common
    generator = _workloads(rendered.docs)["generator"]["containers"][0]
    assert "grpc" in generator["readinessProbe"]  # plaintext: kubelet's native gRPC probe


def test_tls_values_mount_the_secret_and_name_the_admins(sasl_tls_render: Rendered) -> None:
    common = sasl_tls_render.common
    assert common["VISPOD_GRPC_TLS_CERT_FILE"] == "/etc/vispod/grpc-tls/tls.crt"
    assert common["VISPOD_GRPC_TLS_KEY_FILE"] == "/etc/vispod/grpc-tls/tls.key"
    assert common["VISPOD_GRPC_TLS_CA_FILE"] == "/etc/vispod/grpc-tls/ca.crt"
    assert common["VISPOD_GRPC_TLS_ADMIN_IDENTITIES"] == '["vispod-gate"]'
    assert common["VISPOD_GRPC_TLS_ADMIN_OPEN_WITHOUT_MTLS"] == "false"
    workloads = _workloads(sasl_tls_render.docs)
    assert GRPC_SERVERS | {"gate"} <= set(workloads)
    for name in GRPC_SERVERS | {"gate"}:  # servers serve it, the gate presents it
        pod = workloads[name]
        c = pod["containers"][0]
        assert {"name": "grpc-tls", "mountPath": "/etc/vispod/grpc-tls", "readOnly": True} in c["volumeMounts"], name
        assert {"name": "grpc-tls", "secret": {"secretName": "vispod-grpc-tls"}} in pod["volumes"], name
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name  # kubelet's gRPC probe has no TLS


def test_compose_keeps_admin_rpcs_closed_on_the_host_network() -> None:
    """The image binds 0.0.0.0 and compose uses host networking: every gRPC server says admin RPCs are closed."""
    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= GRPC_SERVERS
    for name in GRPC_SERVERS:
        assert services[name].get("network_mode") == "host", name
        assert services[name]["environment"].get("VISPOD_GRPC_TLS_ADMIN_OPEN_WITHOUT_MTLS") == "false", name
