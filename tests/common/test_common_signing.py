"""Ed25519 signing: round trip, tampering, unknown keys, identities, key files, no key material in repr."""

from __future__ import annotations

import base64
import pickle
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vispod.common.signing import (
    BadKey,
    Keyring,
    SignatureInvalid,
    Signer,
    canonical_json,
    generate_keypair,
    main,
)


@pytest.fixture()
def keys(tmp_path):
    generate_keypair(tmp_path, "trainer")
    generate_keypair(tmp_path, "gate")
    return tmp_path


def test_round_trip_names_the_signer(keys):
    signer = Signer.from_file(keys / "trainer.key", "trainer")
    ring = Keyring.from_dir(keys)
    doc = {"b": [1, 2], "a": "é"}
    block = signer.signature_block(doc)
    assert ring.verify_document({"a": "é", "b": [1, 2]}, block) == "trainer"  # key order does not matter
    assert ring.identities() == {"trainer", "gate"}


def test_changed_document_or_signature_is_rejected(keys):
    signer = Signer.from_file(keys / "trainer.key", "trainer")
    ring = Keyring.from_dir(keys)
    block = signer.signature_block({"files": {"a": "00"}})
    with pytest.raises(SignatureInvalid, match="does not match"):
        ring.verify_document({"files": {"a": "01"}}, block)
    sig = bytearray(base64.b64decode(block["signature"]))
    sig[0] ^= 1
    with pytest.raises(SignatureInvalid):
        ring.verify_document({"files": {"a": "00"}}, {**block, "signature": base64.b64encode(bytes(sig)).decode()})
    with pytest.raises(SignatureInvalid):
        ring.verify_document({"files": {"a": "00"}}, {**block, "signature": "not base64!"})
    with pytest.raises(SignatureInvalid, match="no ed25519"):
        ring.verify_document({"files": {"a": "00"}}, {})


def test_unknown_key_and_disallowed_identity(keys, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    generate_keypair(other, "trainer")
    intruder = Signer.from_file(other / "trainer.key", "trainer")  # same name, different key
    ring = Keyring.from_dir(keys)
    with pytest.raises(SignatureInvalid, match="untrusted key"):
        ring.verify_document({"x": 1}, intruder.signature_block({"x": 1}))
    trainer = Signer.from_file(keys / "trainer.key", "trainer")
    with pytest.raises(SignatureInvalid, match="may not sign"):
        ring.verify_document({"x": 1}, trainer.signature_block({"x": 1}), allowed={"gate", "admin"})
    gate = Signer.from_file(keys / "gate.key", "gate")
    assert ring.verify_document({"x": 1}, gate.signature_block({"x": 1}), allowed={"gate", "admin"}) == "gate"


def test_claimed_identity_in_block_is_not_trusted(keys):
    """The keyring decides the identity from the key, whatever the block claims."""
    trainer = Signer.from_file(keys / "trainer.key", "trainer")
    block = {**trainer.signature_block({"x": 1}), "identity": "admin"}
    assert Keyring.from_dir(keys).verify_document({"x": 1}, block) == "trainer"


def test_key_files(keys, tmp_path_factory):
    assert stat.S_IMODE((keys / "trainer.key").stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        generate_keypair(keys, "trainer")  # never overwrites a private key
    raw = Ed25519PrivateKey.generate()
    b64 = tmp_path_factory.mktemp("b64")
    (b64 / "k").write_bytes(base64.b64encode(raw.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())))
    (b64 / "admin.pub").write_bytes(base64.b64encode(raw.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)))
    signer = Signer.from_file(b64 / "k", "admin")
    assert Keyring.from_dir(b64).verify(b"payload", signer.signature_block_bytes(b"payload")) == "admin"
    (b64 / "bad.pub").write_text("hello")
    with pytest.raises(BadKey, match="not an Ed25519 public key"):
        Keyring.from_dir(b64)
    with pytest.raises(BadKey, match="no public keys"):
        Keyring.from_dir(tmp_path_factory.mktemp("empty"))
    with pytest.raises(BadKey):
        Signer.from_file(keys / "trainer.pub", "trainer")
    with pytest.raises(BadKey):
        Signer.from_file(keys / "trainer.key", "Not Valid")


def test_private_key_never_leaks(keys, capsys):
    signer = Signer.from_file(keys / "trainer.key", "trainer")
    pem = (keys / "trainer.key").read_text()
    body = "".join(line for line in pem.splitlines() if "-----" not in line)
    for text in (repr(signer), str(signer), f"{signer}"):
        assert body[:20] not in text and "trainer" in text
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    bad = keys / "broken.key"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nAAAA" + body[4:30] + "\n-----END PRIVATE KEY-----\n")
    with pytest.raises(BadKey) as err:
        Signer.from_file(bad, "trainer")
    assert body[4:30] not in str(err.value)


def test_canonical_json_is_stable_and_refuses_nan():
    assert canonical_json({"b": 1, "a": [1.5, "x"]}) == b'{"a":[1.5,"x"],"b":1}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_keygen_cli(tmp_path, capsys):
    assert main(["keygen", str(tmp_path), "admin"]) == 0
    out = capsys.readouterr().out
    assert "key id" in out and "PRIVATE" not in out
    assert (tmp_path / "admin.key").is_file() and (tmp_path / "admin.pub").is_file()
