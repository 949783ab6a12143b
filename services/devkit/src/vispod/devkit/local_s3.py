"""A real S3-compatible server on 127.0.0.1 for tests, the demo and compose: S3Proxy (Apache-2.0) over a folder.

Its jars are resolved from Maven Central with Maven (deploy/s3proxy/pom.xml; cached like the Kafka broker's),
it serves the S3 API with v2/v4 signatures and create-only writes (If-None-Match), and dies with its parent.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vispod.devkit.local_kafka import CACHE, die_with_parent, free_port, stop_process, wait_listening

S3PROXY_VERSION = os.environ.get("VISPOD_S3PROXY_VERSION", "4.1.0")
POM = Path(__file__).resolve().parents[5] / "deploy" / "s3proxy" / "pom.xml"


def resolve_s3proxy_jars(version: str = S3PROXY_VERSION) -> Path:
    lib = CACHE / f"s3proxy-{version}" / "lib"
    if (lib / ".complete").exists():
        return lib
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch S3Proxy: apt-get install maven")
    tmp = lib.with_name("lib.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(["mvn", "-q", "-B", "-f", str(POM), f"-Ds3proxy.version={version}",
                    "dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"], check=True)
    shutil.rmtree(lib, ignore_errors=True)
    tmp.rename(lib)
    (lib / ".complete").touch()
    return lib


@dataclass
class S3Server:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, 20.0)
            self.process = None

    def create_bucket(self, bucket: str) -> None:
        (self.data_dir / bucket).mkdir(parents=True, exist_ok=True)  # a bucket is a folder to S3Proxy

    def env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """VISPOD_ADAPTER_STORE_* for a service that uses this server."""
        return {"VISPOD_ADAPTER_STORE_URL": f"s3://{bucket}/{prefix}".rstrip("/"),
                "VISPOD_ADAPTER_STORE_ENDPOINT_URL": self.endpoint_url,
                "VISPOD_ADAPTER_STORE_ACCESS_KEY_ID": self.access_key_id,
                "VISPOD_ADAPTER_STORE_SECRET_ACCESS_KEY": self.secret_access_key}


def start_s3(data_dir: Path | None = None, port: int | None = None, timeout: float = 180.0,
             server: S3Server | None = None) -> S3Server:
    """Starts S3Proxy serving `data_dir` (kept across restarts: pass the stopped `server` to restart it on the
    same port, data and credentials)."""
    lib = resolve_s3proxy_jars()
    if server is None:
        data = Path(data_dir or tempfile.mkdtemp(prefix="vispod-s3-"))
        server = S3Server("", "vispod-" + secrets.token_hex(4), secrets.token_hex(16), data, port or free_port())
        server.endpoint_url = f"http://127.0.0.1:{server.port}"
    server.data_dir.mkdir(parents=True, exist_ok=True)
    conf = server.data_dir.parent / f".s3proxy-{server.port}.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join([
            f"s3proxy.endpoint={server.endpoint_url}", "s3proxy.authorization=aws-v2-or-v4",
            f"s3proxy.identity={server.access_key_id}", f"s3proxy.credential={server.secret_access_key}",
            "jclouds.provider=filesystem", f"jclouds.filesystem.basedir={server.data_dir}", ""]))
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Java 17+ is needed for S3Proxy")
    log = open(server.data_dir.parent / f"s3proxy-{server.port}.log", "ab")  # noqa: SIM115 - owned by the process
    server.process = subprocess.Popen(
        [java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
         f"-Dlogback.configurationFile={POM.with_name('logback.xml')}", "-cp", f"{lib}/*",
         "org.gaul.s3proxy.Main", "--properties", str(conf)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
    wait_listening(server.process, server.port, timeout, "S3Proxy", Path(log.name), server.stop)
    return server


def main(argv: list[str] | None = None) -> int:
    """`python -m vispod.devkit.local_s3 resolve|run`: fetch the jars (CI caches them) or run in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m vispod.devkit.local_s3")
    parser.add_argument("action", choices=["resolve", "run"])
    parser.add_argument("--data", type=Path, default=CACHE / "s3-data")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    if args.action == "resolve":
        print(resolve_s3proxy_jars())
        return 0
    server = start_s3(args.data, args.port)
    print(f"s3: {server.endpoint_url} (data in {server.data_dir})", flush=True)
    try:
        assert server.process is not None
        return server.process.wait()
    except KeyboardInterrupt:
        server.stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())
