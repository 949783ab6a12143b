"""What the rest of the generator sees of an adapter: a verified, immutable version on local disk."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

# name@version; both parts become folder names in the cache, so no separators, no leading dot.
_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
ADAPTER_ID_RE = re.compile(rf"^({_PART})@({_PART})$")

# requested == BASE_MODEL asks for the base model explicitly (e.g. an evaluation of base vs adapter).
BASE_MODEL = "base"


@dataclass(frozen=True)
class AdapterVersion:
    adapter_id: str          # name@version
    local_path: Path         # verified local folder: adapter_model.safetensors + adapter_config.json
    base_model_id: str


class AdapterUnavailable(Exception):
    """The requested adapter is unknown, rejected, not verified here, or not servable by this backend."""


def split_adapter_id(adapter_id: str) -> tuple[str, str]:
    """(name, version) of a well-formed id; ValueError otherwise."""
    m = ADAPTER_ID_RE.match(adapter_id or "")
    if not m or ".." in adapter_id:
        raise ValueError(f"adapter id {adapter_id!r} is not name@version (letters, digits, . _ -)")
    return m.group(1), m.group(2)


def peft_adapter_name(adapter_id: str) -> str:
    """A module-name-safe peft adapter name (it becomes part of parameter names: no dots), still unique."""
    digest = hashlib.sha256(adapter_id.encode()).hexdigest()[:8]
    return "a_" + re.sub(r"[^A-Za-z0-9_]", "_", adapter_id) + "_" + digest
