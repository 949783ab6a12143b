"""Throw-away Ed25519 identities for signed lifecycle commands in tests (never written to disk)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vispod.common.lifecycle_signing import sign_command
from vispod.common.signing import Keyring, Signer, generate_keypair
from vispod.v1 import events_pb2


@dataclass(frozen=True)
class Identities:
    gate: Signer
    admin: Signer
    stranger: Signer          # a well-formed "gate" key nobody trusts
    keyring: Keyring          # trusts gate and admin

    def write_public(self, folder: Path) -> Path:
        """gate.pub and admin.pub, as a mounted Secret would hold them."""
        folder.mkdir(parents=True, exist_ok=True)
        for signer in (self.gate, self.admin):
            (folder / f"{signer.identity}.pub").write_bytes(signer.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        return folder

    def command(self, adapter_id: str, state: int, signer: Signer | None = None, share: float = 0.0,
                reason: str = "test decision", **kw) -> events_pb2.AdapterLifecycleChanged:
        msg = events_pb2.AdapterLifecycleChanged(adapter_id=adapter_id, state=state, canary_share=share,
                                                 reason=reason, **kw)
        return sign_command(msg, signer or self.gate)


def identities(folder: Path | None = None) -> Identities:
    """In memory; with `folder`, gate and admin key pairs are written there too (<identity>.key / .pub)."""
    if folder is not None:
        gate, admin = (Signer.from_file(generate_keypair(folder, name)[0], name) for name in ("gate", "admin"))
    else:
        gate, admin = Signer(Ed25519PrivateKey.generate(), "gate"), Signer(Ed25519PrivateKey.generate(), "admin")
    stranger = Signer(Ed25519PrivateKey.generate(), "gate")
    return Identities(gate, admin, stranger, Keyring({"gate": gate.public_key, "admin": admin.public_key}))
