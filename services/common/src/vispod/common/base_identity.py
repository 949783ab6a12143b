"""A base model's identity by content: one digest, computed the same way by the trainer that trains on the weights
and by whoever serves them, so an adapter is never loaded onto (or promoted on) a base it was not trained on.

`weights_digest(path)`: "sha256:" over `config.json` and the weight index (or the unsharded safetensors), each as
"<file name> <sha256>" lines; a single GGUF file is hashed whole. The trainer writes it into the signed manifest
(`base_model_revision`); the generator (`VISPOD_GENERATOR_BASE_MODEL_DIGEST`) and adapter-sync
(`VISPOD_ADAPTERSYNC_BASE_MODEL_DIGEST`) refuse a version whose digest differs from the served base's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from vispod.common.artifacts import sha256_file

PREFIX = "sha256:"


def weights_digest(path: Path) -> str:
    path = Path(path)
    if path.is_file():
        return PREFIX + sha256_file(path)
    files = [path / "config.json"]
    index = sorted(path.glob("*.safetensors.index.json"))
    files += index or sorted(path.glob("*.safetensors"))
    digest = hashlib.sha256()
    for f in files:
        if f.is_file():
            digest.update(f"{f.name} {sha256_file(f)}\n".encode())
    return PREFIX + digest.hexdigest()


def digest_mismatch(served: str, trained_on: str) -> str:
    """Why an adapter trained on `trained_on` must not run on `served` ("" when it may). Nothing configured:
    no check; configured, the adapter must name the same content digest."""
    if not served:
        return ""
    if not trained_on.startswith(PREFIX):
        return f"the adapter names no base content digest ({trained_on or 'none'}); this engine serves {served}"
    if trained_on != served:
        return f"the adapter was trained on base {trained_on}, this engine serves {served}"
    return ""
