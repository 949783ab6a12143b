"""The registry's durable state: one JSON file, replaced atomically, so a restart keeps the active adapter."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vispod.v1 import events_pb2

STATE_FILE = "adapters.json"
FORMAT_VERSION = 1
MAX_HISTORY = 16        # previous actives kept for rollback
MAX_OWN_EVENT_IDS = 256  # lifecycle events this registry published, so it does not re-apply its own
MAX_PENDING = 256        # decisions about adapters not (yet) registered here


def state_name(state: int) -> str:
    """ADAPTER_STATE_ACTIVE -> 'ACTIVE'."""
    return events_pb2.AdapterState.Name(state).removeprefix("ADAPTER_STATE_")


def state_value(name: str) -> int:
    return events_pb2.AdapterState.Value("ADAPTER_STATE_" + name)


@dataclass
class AdapterRecord:
    adapter_id: str
    state: str                      # CANDIDATE | CANARY | ACTIVE | RETIRED | REJECTED
    base_model_id: str
    artifact_uri: str
    local_path: str
    file_sha256: dict[str, str]
    canary_share: float = 0.0
    published_event_id: str = ""
    reason: str = ""
    registered_at: str = ""
    changed_at: str = ""


@dataclass
class RegistryState:
    adapters: dict[str, AdapterRecord] = field(default_factory=dict)   # in registration order
    active: str | None = None
    canary: str | None = None
    history: list[str] = field(default_factory=list)                    # previous actives, oldest first
    # Decisions (from the gate or another replica) about adapters not yet registered here.
    pending: dict[str, dict] = field(default_factory=dict)
    own_event_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"format": FORMAT_VERSION, "active": self.active, "canary": self.canary, "history": self.history,
                "adapters": [asdict(r) for r in self.adapters.values()], "pending": self.pending,
                "own_event_ids": self.own_event_ids[-MAX_OWN_EVENT_IDS:]}

    @classmethod
    def from_json(cls, doc: dict) -> RegistryState:
        if doc.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported adapter state format {doc.get('format')!r}")
        records = [AdapterRecord(**r) for r in doc.get("adapters", [])]
        state = cls(adapters={r.adapter_id: r for r in records}, active=doc.get("active"),
                    canary=doc.get("canary"), history=list(doc.get("history", [])),
                    pending=dict(doc.get("pending", {})), own_event_ids=list(doc.get("own_event_ids", [])))
        for name in (state.active, state.canary, *state.history):
            if name is not None and name not in state.adapters:
                raise ValueError(f"adapter state names unknown adapter {name!r}")
        return state


def load_state(state_dir: Path) -> RegistryState:
    path = state_dir / STATE_FILE
    if not path.exists():
        return RegistryState()
    try:
        return RegistryState.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, KeyError) as exc:
        # Refuse to start on a corrupt file rather than silently forget which adapter was live.
        raise RuntimeError(f"adapter state {path} is unreadable ({exc}); fix or remove it") from exc


def save_state(state_dir: Path, state: RegistryState) -> None:
    """Write to a temp file in the same folder, fsync, rename over the old one, fsync the folder."""
    state_dir.mkdir(parents=True, exist_ok=True)
    data = json.dumps(state.to_json(), indent=1, sort_keys=True).encode()
    fd, tmp = tempfile.mkstemp(prefix=".adapters-", suffix=".tmp", dir=state_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, state_dir / STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
