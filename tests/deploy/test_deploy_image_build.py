"""Builds the judge image with a private dockerd from a local Debian base (debootstrap: no image
registry is reachable) and runs it as docker-compose would: host network, read-only, uid 10001.

Slow (minutes: debootstrap, then pip inside the build), so opt-in: VISPOD_TEST_IMAGE_BUILD=1, with
`bash scripts/install-tools.sh --with-docker` for dockerd and debootstrap. The base image and the
layer cache are kept under ~/.cache/vispod, so later runs are quicker. Only 127.0.0.1 is contacted
(and the package registries, by pip during the build).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from deploy_tools import REPO, TOOLS_BIN, find_tool, free_port, run, stop_process
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.skipif(os.environ.get("VISPOD_TEST_IMAGE_BUILD") != "1",
                                reason="image build is opt-in: VISPOD_TEST_IMAGE_BUILD=1 (takes minutes)")

CACHE = TOOLS_BIN.parent.parent  # ~/.cache/vispod
BASE_TAR = CACHE / "base-images" / "debian-bookworm-python3.tar"
BASE_IMAGE = "vispod-base:bookworm"
SERVICE = "judge"  # the lightest image: no torch


def base_rootfs_tar(tmp: Path) -> Path:
    """A Debian rootfs with python3 + venv, as a tarball to `docker import` (built once, then cached)."""
    if BASE_TAR.exists():
        return BASE_TAR
    rootfs = tmp / "rootfs"
    run([find_tool("debootstrap"), "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
         "bookworm", str(rootfs), "http://deb.debian.org/debian"], timeout=1200)
    # The host's CA bundle, so pip inside the build trusts the same registries the host does.
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt")
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    BASE_TAR.parent.mkdir(parents=True, exist_ok=True)
    partial = BASE_TAR.with_suffix(".part")
    run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], timeout=600)
    partial.rename(BASE_TAR)
    return BASE_TAR


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """A private dockerd (own socket, no bridge or iptables: containers use the host network)."""
    tmp = tmp_path_factory.mktemp("dockerd")
    sock = tmp / "docker.sock"
    log = open(tmp / "dockerd.log", "wb")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen(
        [find_tool("dockerd"), f"--data-root={CACHE / 'docker'}", f"--exec-root={tmp / 'exec'}",
         f"--pidfile={tmp / 'dockerd.pid'}", f"--host=unix://{sock}", "--iptables=false", "--ip6tables=false",
         "--bridge=none"], stdout=log, stderr=subprocess.STDOUT)
    client = [find_tool("docker"), "--host", f"unix://{sock}"]
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([*client, "info"], capture_output=True).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start:\n{(tmp / 'dockerd.log').read_text()[-3000:]}", pytrace=False)
            time.sleep(0.5)
        if subprocess.run([*client, "image", "inspect", BASE_IMAGE], capture_output=True).returncode != 0:
            tar = base_rootfs_tar(tmp)
            with open(tar, "rb") as f:
                subprocess.run([*client, "import", "-", BASE_IMAGE], stdin=f, check=True, capture_output=True)
        yield client
    finally:
        stop_process(daemon)
        log.close()
        # dockerd leaves its network namespace bind-mounted under exec-root.
        for netns in (tmp / "exec" / "netns").glob("*"):
            subprocess.run(["umount", str(netns)], capture_output=True)


def build_context(tmp: Path) -> Path:
    """Only what the Dockerfile copies: the repository root also holds a virtualenv and artifacts."""
    ctx = tmp / "context"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "protos", ctx / "protos")
    for pkg in ("common", SERVICE):
        shutil.copytree(REPO / "services" / pkg, ctx / "services" / pkg, ignore=ignore)
    shutil.rmtree(ctx / "services/common/src/vispod/v1", ignore_errors=True)  # stubs: the build generates them
    return ctx


def test_image_builds_runs_healthy_as_non_root_and_stops_on_sigterm(docker: list[str], tmp_path: Path) -> None:
    tag = f"vispod/{SERVICE}:test"
    run([*docker, "build", "--network", "host", "-f", str(REPO / "Dockerfile"), "--build-arg", f"SERVICE={SERVICE}",
         "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", tag, str(build_context(tmp_path))], timeout=1800)
    grpc_port, metrics_port = free_port(), free_port()
    name = f"vispod-{SERVICE}-test-{os.getpid()}"
    run([*docker, "run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
         "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--health-interval", "2s",
         "-e", f"VISPOD_JUDGE_GRPC_PORT={grpc_port}", "-e", f"VISPOD_JUDGE_METRICS_PORT={metrics_port}",
         "-e", "VISPOD_JUDGE_CONSUME=false", "-e", 'VISPOD_JUDGE_JUDGES=["openai:gpt-4o"]', tag])
    try:
        deadline = time.monotonic() + 90
        status = ""
        while status != "healthy":
            status = run([*docker, "inspect", "--format", "{{.State.Health.Status}}", name]).strip()
            if status == "unhealthy" or time.monotonic() > deadline:
                pytest.fail(f"container {status}:\n{run([*docker, 'logs', name])[-3000:]}", pytrace=False)
            time.sleep(1)
        assert run([*docker, "inspect", "--format", "{{.Config.User}}", name]).strip() == "10001:10001"
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
            assert b"vispod_grpc_requests_total" in resp.read()
        started = time.monotonic()
        run([*docker, "stop", "-t", "30", name], timeout=60)
        assert time.monotonic() - started < 25, "SIGTERM shutdown must fit the 30 s grace period"
        assert run([*docker, "inspect", "--format", "{{.State.ExitCode}}", name]).strip() == "0"
    finally:
        subprocess.run([*docker, "rm", "-f", name], capture_output=True)
