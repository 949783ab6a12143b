"""Signed adapter lifecycle commands: the gate and admins sign, generators verify before obeying.

The signed document is the AdapterLifecycleChanged event without its `signature` field, as canonical JSON
(vispod.common.signing). The signer's identity must be one of LIFECYCLE_SIGNERS and equal the event's
`actor`: a self-declared actor without a matching signature is never enough.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf.json_format import MessageToDict

from vispod.common.signing import Keyring, SignatureInvalid, Signer, generate_keypair
from vispod.v1 import events_pb2

LIFECYCLE_SIGNERS = frozenset({"gate", "admin"})


def command_document(msg: events_pb2.AdapterLifecycleChanged) -> dict:
    unsigned = events_pb2.AdapterLifecycleChanged()
    unsigned.CopyFrom(msg)
    unsigned.ClearField("signature")
    return MessageToDict(unsigned, preserving_proto_field_name=True)


def sign_command(msg: events_pb2.AdapterLifecycleChanged, signer: Signer) -> events_pb2.AdapterLifecycleChanged:
    """Sets `actor` to the signer's identity (and `changed_at` to now when unset: generators refuse commands
    whose signed time is far from when they reached the topic) and the signature over everything else."""
    if signer.identity not in LIFECYCLE_SIGNERS:
        raise ValueError(f"identity {signer.identity!r} may not sign lifecycle commands")
    msg.actor = signer.identity
    if not msg.HasField("changed_at"):
        msg.changed_at.GetCurrentTime()
    msg.ClearField("signature")
    msg.signature.update(signer.signature_block(command_document(msg)))
    return msg


def verify_command(msg: events_pb2.AdapterLifecycleChanged, keyring: Keyring | None) -> str:
    """The identity that signed the command; SignatureInvalid (the reason) when it must not be obeyed."""
    if not msg.signature:
        raise SignatureInvalid(f"unsigned lifecycle command (actor {msg.actor!r} is only self-declared)")
    if keyring is None or not len(keyring):
        raise SignatureInvalid("no lifecycle public keys configured: no command can be verified")
    identity = keyring.verify_document(command_document(msg), dict(msg.signature), LIFECYCLE_SIGNERS)
    if identity != msg.actor:
        raise SignatureInvalid(f"signed by {identity!r} but claims actor {msg.actor!r}")
    return identity


def local_identities(folder: Path) -> Path:
    """Development stacks only (`vispod up`, the mini-paper): gate and admin key pairs in `folder`, made once.
    Generators trust the folder (its *.pub); the gate signs with gate.key. Production keys come from Secrets."""
    for identity in sorted(LIFECYCLE_SIGNERS):
        if not (folder / f"{identity}.key").exists():
            generate_keypair(folder, identity)
    return folder
