"""A real single-node Apache Kafka 4.x broker (KRaft) on 127.0.0.1, for tests, the demo and `vispod up`.

The broker's jars are resolved from Maven Central with Maven (cached in ~/.m2 and in a lib folder),
storage is formatted in a temporary folder, and the broker listens on free loopback ports.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vispod.common.kafka_address import BROKER_RECORD as STATE_FILE
from vispod.common.kafka_address import CACHE
from vispod.devkit.jvm_class_archive import ClassArchive, class_archive

KAFKA_VERSION = os.environ.get("VISPOD_KAFKA_VERSION", "4.1.1")
# The Maven project that names the broker's artifacts (package data).
POM = Path(os.environ.get("VISPOD_KAFKA_POM", Path(__file__).with_name("kafka-pom.xml")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def resolve_broker_jars(version: str = KAFKA_VERSION) -> Path:
    """Resolves kafka_2.13 and its runtime dependencies into a cached lib folder; returns it."""
    lib = CACHE / f"kafka-{version}" / "lib"
    marker = lib / ".complete"
    if marker.exists():
        return lib
    if not POM.exists():
        raise RuntimeError(f"missing {POM} (VISPOD_KAFKA_POM)")
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch the Kafka broker: apt-get install maven")
    tmp = lib.with_name("lib.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        "mvn", "-q", "-B", "-f", str(POM), f"-Dkafka.version={version}",
        "dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
    ]
    subprocess.run(cmd, check=True)
    shutil.rmtree(lib, ignore_errors=True)
    tmp.rename(lib)
    marker.touch()
    return lib


@dataclass
class Broker:
    bootstrap: str
    workdir: Path
    process: subprocess.Popen[bytes]
    archive: ClassArchive | None = None

    def stop(self, timeout: float = 20.0) -> None:
        dumping = self.archive is not None and self.archive.pending is not None
        stop_process(self.process, max(timeout, 120.0) if dumping else timeout)  # writing the archive takes a while
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.archive is not None:
            self.archive.settle(self.process.returncode)


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if it is still running after `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def die_with_parent() -> None:
    """preexec_fn for local child processes: the kernel sends SIGTERM when their parent dies (Linux)."""
    with contextlib.suppress(OSError):  # not Linux: the child outlives a killed parent
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def wait_listening(process: subprocess.Popen, port: int, timeout: float, name: str, log: Path,
                   stop: Callable[[], None]) -> None:
    """Returns once `process` accepts connections on 127.0.0.1:`port`; raises if it exits first, or calls
    `stop` and raises when `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    stop()
    raise RuntimeError(f"{name} did not listen on {port} within {timeout}s")


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Java 17+ is needed for the Kafka broker")
    return java


def start_broker(port: int | None = None, workdir: Path | None = None, timeout: float = 60.0,
                 detach: bool = False) -> Broker:
    """Formats KRaft storage and starts a broker; returns once it accepts connections.

    Unless `detach`, the broker dies with the process that started it (no orphans after a crash).
    """
    lib = resolve_broker_jars()
    port = port or free_port()
    controller = free_port()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="vispod-kafka-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(workdir / "data", ignore_errors=True)  # a fresh cluster every start
    props = workdir / "server.properties"
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={workdir / 'data'}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=4",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "num.partitions=1",
                "auto.create.topics.enable=true",
                "log.flush.interval.messages=100000",
                "",
            ]
        )
    )
    classpath = f"{lib}/*"
    java = _java()
    formatter = class_archive("kafka-storage-format", java, lib, CACHE)
    formatted = subprocess.run(
        [java, *formatter.flags(), "-cp", classpath, "kafka.tools.StorageTool", "format",
         "-t", str(uuid.uuid4()).replace("-", "")[:22], "-c", str(props)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    formatter.settle(formatted.returncode)
    log = open(workdir / "broker.log", "wb")  # noqa: SIM115 - owned by the process
    heap = os.environ.get("VISPOD_KAFKA_HEAP", "-Xmx512m")
    # A detached broker (make kafka-up) is stopped by another process: it neither dumps nor moves an archive.
    archive = class_archive("kafka-broker", java, lib, CACHE)
    if detach and archive.pending is not None:
        archive = ClassArchive(archive.path, None, enabled=False)
    process = subprocess.Popen(
        [java, heap, "-XX:+UseSerialGC", *archive.flags(), "-cp", classpath, "kafka.Kafka", str(props)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=None if detach else die_with_parent,
    )
    broker = Broker(f"127.0.0.1:{port}", workdir, process, archive)
    wait_listening(process, port, timeout, "Kafka broker", workdir / "broker.log", broker.stop)
    return broker


def main(argv: list[str] | None = None) -> int:
    """`make kafka-up` / `make kafka-down`: a broker in the background for manual use."""
    parser = argparse.ArgumentParser(prog="vispod kafka")
    parser.add_argument("action", choices=["up", "down", "status", "resolve"])
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.action == "resolve":
        print(resolve_broker_jars())
        return 0
    state = json.loads(STATE_FILE.read_text()) if STATE_FILE.exists() else None
    if args.action == "up":
        if state and _alive(state["pid"]):
            print(f"kafka: {state['bootstrap']} (already running, pid {state['pid']})")
            return 0
        broker = start_broker(args.port, detach=True)
        STATE_FILE.write_text(json.dumps({"bootstrap": broker.bootstrap, "pid": broker.process.pid,
                                          "workdir": str(broker.workdir)}))
        print(f"kafka: {broker.bootstrap}")
        print(f"export VISPOD_KAFKA_BOOTSTRAP={broker.bootstrap}")
        return 0
    if args.action == "status":
        print(f"kafka: {state['bootstrap']}" if state and _alive(state["pid"]) else "kafka: not running")
        return 0
    if state:
        if _alive(state["pid"]):
            os.killpg(state["pid"], signal.SIGTERM)
            for _ in range(100):
                if not _alive(state["pid"]):
                    break
                time.sleep(0.2)
        shutil.rmtree(state["workdir"], ignore_errors=True)
        STATE_FILE.unlink(missing_ok=True)
    print("kafka: stopped")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
