"""`vispod up --store s3`: the adapter store on a local S3 server (S3Proxy), wired the way compose and Kubernetes
wire it: generators get the store's location, credentials and the trainer's public key (they verify every
version before loading it); the trainer's settings, with its private key, go to a 0600 file for whoever publishes
(`vispod demo --store s3`, a trainer run: `set -a; . <workdir>/adapter-store.env`).

The default stack (`--store files`) keeps the unsigned local folders under the stack's artifact root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vispod.common.adapter_store.settings import AdapterStoreSettings
from vispod.common.signing import generate_keypair
from vispod.devkit.local_s3 import S3Server, start_s3

BUCKET = "vispod-adapters"
PREFIX = "vispod"
ENV_FILE = "adapter-store.env"
STORES = ("files", "s3")


@dataclass
class LocalAdapterStore:
    server: S3Server
    consumer_env: dict[str, str]    # VISPOD_ADAPTER_STORE_* for generators: no signing key
    env_file: Path                  # the trainer's VISPOD_ADAPTER_STORE_* (0600): the consumers' plus its key

    @property
    def url(self) -> str:
        return self.consumer_env["VISPOD_ADAPTER_STORE_URL"]

    def stop(self) -> None:
        self.server.stop()


def trainer_keys(folder: Path) -> tuple[Path, Path]:
    """The stack's trainer key (made once) and a keyring folder holding only its public half."""
    key, pub = folder / "trainer.key", folder / "trainer.pub"
    if not key.exists():
        generate_keypair(folder, "trainer")
    ring = folder / "ring"
    ring.mkdir(exist_ok=True)
    (ring / "trainer.pub").write_bytes(pub.read_bytes())
    return key, ring


def start_adapter_store(workdir: Path) -> LocalAdapterStore:
    """S3Proxy over `workdir`/s3 (kept across runs), its bucket, the trainer's keys and the settings files."""
    server = start_s3(workdir / "s3" / "data")
    server.create_bucket(BUCKET)
    key, ring = trainer_keys(workdir / "keys" / "trainer")
    consumer = {**server.env(BUCKET, PREFIX), "VISPOD_ADAPTER_STORE_KEYRING_DIR": str(ring)}
    env_file = workdir / ENV_FILE
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{k}={v}\n" for k, v in {**consumer, "VISPOD_ADAPTER_STORE_SIGNING_KEY_FILE": str(key)}.items())
    return LocalAdapterStore(server, consumer, env_file)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a settings file written by `start_adapter_store`."""
    pairs = (line.split("=", 1) for line in Path(path).read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def store_settings(env_file: Path) -> AdapterStoreSettings:
    """The adapter store settings (signing key included) of the trainer's settings file."""
    prefix = "VISPOD_ADAPTER_STORE_"
    return AdapterStoreSettings(**{k.removeprefix(prefix).lower(): v for k, v in read_env_file(env_file).items()
                                   if k.startswith(prefix)})
