"""Ed25519 signatures over canonical JSON: adapter manifests (trainer → consumers) and lifecycle commands.

A signer holds one private key (a PEM file or a base64 raw key, mounted from a Secret; never logged or
repr'd). A verifier holds a keyring: identity name → public key. `verify_*` answers which identity signed,
or raises `SignatureInvalid`; nothing signed by a key outside the keyring is accepted.

Keys on disk: private PEM (PKCS#8) or 32 raw bytes base64; public PEM (SubjectPublicKeyInfo) or base64.
A keyring folder holds `<identity>.pub` files. `python -m vispod.common.signing keygen DIR NAME` writes a pair.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "ed25519"
MAX_KEY_FILE = 16 * 1024
_IDENTITY_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class SignatureInvalid(Exception):
    """Unsigned, malformed, signed by an unknown key, or the bytes were changed after signing."""


class BadKey(ValueError):
    """A key file that cannot be read as an Ed25519 key (the message never includes key material)."""


def canonical_json(value: Any) -> bytes:
    """The bytes that are signed: sorted keys, no spaces, UTF-8; the same document always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def key_id(public: Ed25519PublicKey) -> str:
    """A short public fingerprint: the first 16 hex digits of sha256 over the raw public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _read_key_bytes(path: Path) -> bytes:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_KEY_FILE:
            raise BadKey(f"{path} is too large to be a key")
        return path.read_bytes().strip()
    except OSError as exc:
        raise BadKey(f"cannot read key file {path}: {exc.strerror}") from None


def _parse_key(data: bytes, where: str, private: bool) -> Ed25519PrivateKey | Ed25519PublicKey:
    kind, cls = ("private", Ed25519PrivateKey) if private else ("public", Ed25519PublicKey)
    try:
        if data.startswith(b"-----BEGIN"):
            key = (serialization.load_pem_private_key(data, password=None) if private
                   else serialization.load_pem_public_key(data))
        else:
            raw = base64.b64decode(data, validate=True)
            key = Ed25519PrivateKey.from_private_bytes(raw) if private else Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError, binascii.Error):
        raise BadKey(f"{where} is not an Ed25519 {kind} key (PEM or base64 of 32 bytes)") from None
    if not isinstance(key, cls):
        raise BadKey(f"{where} is a {kind} key of another algorithm; Ed25519 is required")
    return key


def parse_private_key(data: bytes, where: str = "key") -> Ed25519PrivateKey:
    return _parse_key(data, where, private=True)  # type: ignore[return-value]


def parse_public_key(data: bytes, where: str = "key") -> Ed25519PublicKey:
    return _parse_key(data, where, private=False)  # type: ignore[return-value]


class Signer:
    """Signs as one identity. The private key stays inside; repr and str show only identity and key id."""

    __slots__ = ("_key", "identity", "key_id")

    def __init__(self, private: Ed25519PrivateKey, identity: str) -> None:
        self._key = private
        self.identity = check_identity(identity)
        self.key_id = key_id(private.public_key())

    @classmethod
    def from_file(cls, path: Path, identity: str) -> Signer:
        return cls(parse_private_key(_read_key_bytes(path), str(path)), identity)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def sign(self, payload: bytes) -> str:
        """Base64 signature of the payload bytes."""
        return base64.b64encode(self._key.sign(payload)).decode("ascii")

    def signature_block(self, document: Any) -> dict[str, str]:
        """What travels beside a signed document (signed as its canonical JSON)."""
        return self.signature_block_bytes(canonical_json(document))

    def signature_block_bytes(self, payload: bytes) -> dict[str, str]:
        """What travels beside signed bytes (e.g. a manifest file exactly as stored)."""
        return {"algorithm": ALGORITHM, "identity": self.identity, "key_id": self.key_id,
                "signature": self.sign(payload)}

    def __repr__(self) -> str:
        return f"Signer(identity={self.identity!r}, key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self):  # never pickled (e.g. into a subprocess or a log record)
        raise TypeError("a Signer cannot be pickled")


class Keyring:
    """Trusted public keys by identity ("trainer", "gate", "admin", …). Several keys per identity allow rotation."""

    def __init__(self, keys: Mapping[str, list[Ed25519PublicKey] | Ed25519PublicKey] | None = None) -> None:
        self._by_id: dict[str, tuple[str, Ed25519PublicKey]] = {}
        for identity, value in (keys or {}).items():
            for key in value if isinstance(value, list) else [value]:
                self.add(identity, key)

    def add(self, identity: str, public: Ed25519PublicKey) -> None:
        self._by_id[key_id(public)] = (check_identity(identity), public)

    @classmethod
    def from_dir(cls, folder: Path) -> Keyring:
        """Every `<identity>.pub` (or `<identity>.<n>.pub`) in the folder; an empty or missing folder is an error."""
        folder = Path(folder)
        ring = cls()
        files = sorted(folder.glob("*.pub")) if folder.is_dir() else []
        for path in files:
            ring.add(path.name.split(".", 1)[0], parse_public_key(_read_key_bytes(path), str(path)))
        if not ring:
            raise BadKey(f"no public keys (*.pub) in {folder}")
        return ring

    def __len__(self) -> int:
        return len(self._by_id)

    def identities(self) -> set[str]:
        return {identity for identity, _ in self._by_id.values()}

    def verify(self, payload: bytes, block: Mapping[str, Any], allowed: set[str] | frozenset[str] | None = None) -> str:
        """The identity whose key signed `payload`; raises SignatureInvalid otherwise. With `allowed`, that
        identity must also be one of them (a trainer key cannot sign a lifecycle command)."""
        if not isinstance(block, Mapping) or block.get("algorithm") != ALGORITHM:
            raise SignatureInvalid("no ed25519 signature block")
        kid, sig = block.get("key_id"), block.get("signature")
        if not isinstance(kid, str) or not isinstance(sig, str):
            raise SignatureInvalid("signature block lacks key_id or signature")
        entry = self._by_id.get(kid)
        if entry is None:
            raise SignatureInvalid(f"signed by an untrusted key {kid[:16]!r}")
        identity, public = entry
        if allowed is not None and identity not in allowed:
            raise SignatureInvalid(f"identity {identity!r} may not sign this (allowed: {sorted(allowed)})")
        try:
            public.verify(base64.b64decode(sig, validate=True), payload)
        except (InvalidSignature, binascii.Error, ValueError):
            raise SignatureInvalid(f"signature by {identity!r} does not match the content") from None
        return identity

    def verify_document(self, document: Any, block: Mapping[str, Any],
                        allowed: set[str] | frozenset[str] | None = None) -> str:
        return self.verify(canonical_json(document), block, allowed)


def check_identity(identity: str) -> str:
    if not identity or len(identity) > 64 or not set(identity) <= _IDENTITY_CHARS:
        raise BadKey(f"bad signing identity {identity!r}: lower-case letters, digits, '-', '_', '.'")
    return identity


def generate_keypair(folder: Path, identity: str) -> tuple[Path, Path]:
    """Writes <identity>.key (private PEM, mode 0600) and <identity>.pub; refuses to overwrite a private key."""
    check_identity(identity)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    key_path, pub_path = folder / f"{identity}.key", folder / f"{identity}.pub"
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_path.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_path, pub_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vispod.common.signing")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("keygen", help="write <identity>.key (0600) and <identity>.pub into a folder")
    gen.add_argument("folder", type=Path)
    gen.add_argument("identity")
    args = parser.parse_args(argv)
    key_path, pub_path = generate_keypair(args.folder, args.identity)
    signer = Signer.from_file(key_path, args.identity)
    print(f"wrote {key_path} and {pub_path} (key id {signer.key_id})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
