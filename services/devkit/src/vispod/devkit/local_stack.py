"""`vispod up`: one broker and one process per installed service on this machine, until Ctrl-C/SIGTERM; a
service that dies is restarted with backoff (vispod.devkit.supervisor)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from vispod.common.bus import ensure_topics
from vispod.common.kafka_address import STACK_RECORD
from vispod.common.lifecycle_signing import local_identities
from vispod.common.settings import DatasetSettings, KafkaSettings
from vispod.devkit import local_kafka
from vispod.devkit.local_adapter_store import STORES, start_adapter_store
from vispod.devkit.supervisor import GaveUp, RestartPolicy, Supervised, Supervisor

# Start order: producers of what others consume come first.
SERVICES = ("synth", "generator", "metrics", "judge", "voice", "gate")
UP_STATE = STACK_RECORD
# What a plain `vispod up` needs beyond each service's own defaults on a machine with only the embedded weights.
# Both are RANDOM weights, opted into here and labelled in every output: no CLIP weights exist offline, so
# grounding runs on random weights (MetricsComputed says so); with no VISPOD_SYNTH_MODEL_PATH synth draws with
# the tiny random pipeline (SynthesisCompleted.random_weights).
EMBEDDED_DEFAULTS = {
    "metrics": {"VISPOD_METRICS_CLIP_RANDOM_INIT": "true"},
    "synth": {"VISPOD_SYNTH_TINY_IF_UNSET": "true"},
}


@dataclass
class Running:
    name: str
    grpc_port: int
    metrics_port: int
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] = None  # type: ignore[assignment]  # set by start()

    def start(self) -> subprocess.Popen[bytes]:
        """(Re)starts the service on the same ports, appending to its log."""
        with open(self.log, "ab") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen([sys.executable, "-m", f"vispod.{self.name}"], env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, preexec_fn=local_kafka.die_with_parent)
        return self.process


def stack_state(bootstrap: str | None = None) -> dict | None:
    """What the running `vispod up` wrote (broker, ports, image roots and inbox); None when none runs
    (or it uses another broker than `bootstrap`)."""
    try:
        state = json.loads(UP_STATE.read_text())
    except (OSError, ValueError):
        return None
    if bootstrap and state.get("bootstrap") != bootstrap:
        return None
    return state


def installed_services(names: list[str] | None = None) -> list[str]:
    wanted = names or list(SERVICES)
    unknown = [n for n in wanted if n not in SERVICES]
    if unknown:
        raise SystemExit(f"unknown service(s): {', '.join(unknown)}; known: {', '.join(SERVICES)}")
    return [n for n in wanted if importlib.util.find_spec(f"vispod.{n}.__main__") is not None]


def _wait_ready(svc: Running, deadline: float, stop: threading.Event) -> bool:
    url = f"http://127.0.0.1:{svc.metrics_port}/readyz"
    while time.monotonic() < deadline and not stop.is_set():
        if svc.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def run_stack(names: list[str] | None, image_roots: list[Path], workdir: Path, ready_timeout: float,
              store: str = "files", restarts: RestartPolicy | None = None) -> int:
    """`store`: "files" (unsigned local folders under the artifact root) or "s3" (a local S3Proxy: signed
    versions, verified by the generators before loading; see local_adapter_store)."""
    if store not in STORES:
        raise SystemExit(f"unknown adapter store {store!r}; known: {', '.join(STORES)}")
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    broker = None
    bootstrap = os.environ.get("VISPOD_KAFKA_BOOTSTRAP")
    if not bootstrap:
        print("starting a local Kafka broker …", flush=True)
        broker = local_kafka.start_broker(workdir=workdir / "kafka")
        bootstrap = broker.bootstrap
        # A new broker has none of the events the adapter registry's saved state came from: start it afresh too.
        shutil.rmtree(workdir / "generator" / "state", ignore_errors=True)
    print(f"kafka: {bootstrap}", flush=True)
    prefix = os.environ.get("VISPOD_KAFKA_TOPIC_PREFIX", "vispod")
    ensure_topics(KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix))
    adapter_store = None
    if store == "s3":
        print("starting a local S3 server (S3Proxy) for the adapter store …", flush=True)
        try:
            adapter_store = start_adapter_store(workdir)
        except BaseException:
            if broker:
                broker.stop()
            raise
        print(f"adapter store: {adapter_store.url} on {adapter_store.server.endpoint_url} (signed versions; "
              f"the trainer's settings: {adapter_store.env_file})", flush=True)

    # The stack's image inbox: `vispod submit` and `vispod demo` copy a user's photos from anywhere here
    # (named by content), so no folder outside the roots has to be opened up to the services.
    inbox = workdir / "images"
    inbox.mkdir(parents=True, exist_ok=True)
    roots = [workdir / "artifacts", inbox, Path("out").resolve(), *[r.resolve() for r in image_roots]]
    datasets = DatasetSettings().root  # read now: the CLI sets it after this module is imported
    if datasets.exists():
        roots.append(datasets)
    running: list[Running] = []
    code = 0
    try:
        for name in installed_services(names):
            grpc_port, metrics_port = local_kafka.free_port(), local_kafka.free_port()
            prefix_env = f"VISPOD_{name.upper()}_"
            env = {
                **os.environ,
                "VISPOD_KAFKA_BOOTSTRAP": bootstrap,
                "VISPOD_IMAGES_FILE_ROOTS": json.dumps([str(r) for r in roots]),
                prefix_env + "GRPC_PORT": str(grpc_port),
                prefix_env + "METRICS_PORT": str(metrics_port),
                prefix_env + "ARTIFACT_ROOT": str(workdir / "artifacts"),
                "PYTHONUNBUFFERED": "1",
            }
            # A restarted service takes its partitions back once the group gives up on its dead predecessor.
            env.setdefault("VISPOD_KAFKA_SESSION_TIMEOUT_MS", "10000")
            for key, value in EMBEDDED_DEFAULTS.get(name, {}).items():
                env.setdefault(key, value)
            if name == "generator":  # adapter registry state beside the stack, not in the caller's folder
                env.setdefault("VISPOD_GENERATOR_ADAPTER_STATE_DIR", str(workdir / "generator" / "state"))
                env.setdefault("VISPOD_GENERATOR_ADAPTER_CACHE_DIR", str(workdir / "generator" / "adapters"))
                # Generators obey lifecycle commands signed by the gate or an admin: this stack's own dev keys.
                env.setdefault("VISPOD_GENERATOR_LIFECYCLE_KEYS_DIR", str(local_identities(workdir / "keys")))
                if adapter_store is not None:  # the stack's store wins over a caller's: one store per stack
                    env.update(adapter_store.consumer_env)
            if name == "gate":
                env.setdefault("VISPOD_GATE_SIGNING_KEY_FILE", str(local_identities(workdir / "keys") / "gate.key"))
            log = workdir / f"{name}.log"
            log.unlink(missing_ok=True)
            svc = Running(name, grpc_port, metrics_port, log, env)
            svc.start()
            running.append(svc)
        deadline = time.monotonic() + ready_timeout
        for svc in running:
            if not _wait_ready(svc, deadline, stop):
                if stop.is_set():
                    return code
                print(f"{svc.name}: did not become ready; see {svc.log}", flush=True)
                code = 1
                return code
            print(f"{svc.name}: grpc 127.0.0.1:{svc.grpc_port} metrics http://127.0.0.1:{svc.metrics_port}/metrics "
                  f"(pid {svc.process.pid}, log {svc.log})", flush=True)

        def write_state(*_: object) -> None:
            UP_STATE.parent.mkdir(parents=True, exist_ok=True)
            UP_STATE.write_text(json.dumps({
                "bootstrap": bootstrap, "pid": os.getpid(),
                "file_roots": [str(r) for r in roots], "image_inbox": str(inbox),
                "services": {s.name: {"grpc": s.grpc_port, "metrics": s.metrics_port, "pid": s.process.pid}
                             for s in running},
                "adapter_store": ({"url": adapter_store.url, "endpoint_url": adapter_store.server.endpoint_url,
                                   "env_file": str(adapter_store.env_file)} if adapter_store else None),
            }))

        write_state()
        supervisor = Supervisor([Supervised(s.name, s.start, s.metrics_port, s.log, s.process) for s in running],
                                restarts or RestartPolicy(), on_restart=write_state)
        print("ready — Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            try:
                supervisor.check()
            except GaveUp as exc:
                print(f"GIVING UP: {exc}", flush=True)
                return 1
        return code
    finally:
        print("stopping …", flush=True)
        for svc in reversed(running):
            local_kafka.stop_process(svc.process, 30)
        if broker:
            broker.stop()
        if adapter_store is not None:
            adapter_store.stop()
        UP_STATE.unlink(missing_ok=True)
        print("stopped", flush=True)
