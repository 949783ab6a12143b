"""The keys and credentials docker-compose's services need, made once under ./var (`make up` runs this).

    var/keys/public/lifecycle/{gate,admin}.pub   generators trust these lifecycle signers (mounted read-only)
    var/keys/public/adapters/trainer.pub         generators verify adapter versions with it
    var/keys/{gate,admin,trainer}/<name>.key     each private key only where it signs (gate, operator, trainer)
    var/secrets/adapter-store.env                the S3 server's credentials (0600): `set -a; . <file>` before
                                                 docker-compose, which passes them through (never in its file)
    var/s3/vispod-adapters/                      the adapter store's bucket (a folder to S3Proxy)

Existing keys and credentials are kept: running it again changes nothing.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
from pathlib import Path

from vispod.common.lifecycle_signing import LIFECYCLE_SIGNERS
from vispod.common.signing import generate_keypair
from vispod.devkit.local_adapter_store import BUCKET

SECRETS_ENV = Path("secrets") / "adapter-store.env"


def _private_key(var: Path, identity: str) -> Path:
    folder = var / "keys" / identity
    if not (folder / f"{identity}.key").exists():
        generate_keypair(folder, identity)
    return folder / f"{identity}.pub"


def write_compose_secrets(var: Path) -> Path:
    """Makes what is missing; returns the credentials file."""
    public = var / "keys" / "public"
    for sub, identities in (("lifecycle", sorted(LIFECYCLE_SIGNERS)), ("adapters", ["trainer"])):
        (public / sub).mkdir(parents=True, exist_ok=True)
        for identity in identities:
            shutil.copyfile(_private_key(var, identity), public / sub / f"{identity}.pub")
    env = var / SECRETS_ENV
    if not env.exists():
        env.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"VISPOD_ADAPTER_STORE_ACCESS_KEY_ID=vispod-{secrets.token_hex(4)}\n"
                     f"VISPOD_ADAPTER_STORE_SECRET_ACCESS_KEY={secrets.token_hex(20)}\n")
    (var / "s3" / BUCKET).mkdir(parents=True, exist_ok=True)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vispod.devkit.compose_secrets")
    parser.add_argument("var", type=Path, nargs="?", default=Path("var"))
    args = parser.parse_args(argv)
    print(write_compose_secrets(args.var))
    return 0


if __name__ == "__main__":
    sys.exit(main())
