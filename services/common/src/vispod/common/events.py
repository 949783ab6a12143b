"""CloudEvents Kafka binding (binary mode) for the vispod protobuf events.

Value: the protobuf bytes (content-type application/protobuf) or, on ingestion, the proto3 JSON
mapping (content-type application/json). Headers: ce_specversion, ce_id, ce_type (the proto's
full name), ce_source, ce_time, content-type. Key: the image set id (ordering per image set).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from vispod.v1 import events_pb2

PROTOBUF = "application/protobuf"
JSON = "application/json"

EVENT_TYPES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        events_pb2.ImageSetSubmitted,
        events_pb2.DialogueGenerated,
        events_pb2.MetricsComputed,
        events_pb2.JudgementCompleted,
        events_pb2.AdapterPublished,
        events_pb2.AdapterLifecycleChanged,
        events_pb2.SynthesisRequested,
        events_pb2.SynthesisCompleted,
        events_pb2.PodcastRendered,
        events_pb2.CanaryProgress,
        events_pb2.DeadLetter,
    )
}


class EventDecodeError(ValueError):
    """The record is not a valid vispod event; the reason says why."""


@dataclass(frozen=True)
class Envelope:
    """A decoded event: its CloudEvents attributes and the protobuf message."""

    id: str
    type: str
    source: str
    time: str
    message: Message
    key: bytes | None = None
    extensions: dict[str, str] = field(default_factory=dict)
    # The Kafka partition it was consumed from (-1 when not consumed from Kafka).
    partition: int = -1
    # The Kafka record's timestamp in ms: the broker's append time on LogAppendTime topics (-1: not from Kafka).
    timestamp_ms: int = -1


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def derived_id(parent_id: str, index: int = 0, salt: str = "") -> str:
    """A deterministic event id for output `index` of input `parent_id`: redelivery re-creates the same id."""
    digest = hashlib.sha256(f"{parent_id}/{salt}/{index}".encode()).hexdigest()
    return str(uuid.UUID(digest[:32]))


def event_key(message: Message) -> bytes | None:
    for name in ("image_set_id", "adapter_id", "request_id"):
        if name in message.DESCRIPTOR.fields_by_name:
            value = getattr(message, name)
            if value:
                return value.encode()
    return None


def encode(
    message: Message,
    source: str,
    event_id: str | None = None,
    content_type: str = PROTOBUF,
) -> tuple[bytes, list[tuple[str, bytes]], bytes | None]:
    """Returns (value, headers, key) ready for a Kafka producer."""
    type_name = message.DESCRIPTOR.full_name
    if type_name not in EVENT_TYPES:
        raise ValueError(f"{type_name} is not a vispod event type")
    if content_type == PROTOBUF:
        value = message.SerializeToString(deterministic=True)
    elif content_type == JSON:
        value = json_format.MessageToJson(message, indent=None).encode()
    else:
        raise ValueError(f"unsupported content type {content_type}")
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", (event_id or str(uuid.uuid4())).encode()),
        ("ce_type", type_name.encode()),
        ("ce_source", source.encode()),
        ("ce_time", now_iso().encode()),
        ("content-type", content_type.encode()),
    ]
    return value, headers, event_key(message)


def _header_map(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, raw in headers or []:
        try:
            out[name.lower()] = (raw or b"").decode()
        except UnicodeDecodeError as exc:
            raise EventDecodeError(f"header {name!r} is not UTF-8") from exc
    return out


def decode(
    value: bytes | None,
    headers: list[tuple[str, bytes]] | None,
    expected: type[Message] | None = None,
    key: bytes | None = None,
) -> Envelope:
    """Decodes a record; raises EventDecodeError with a reason for anything malformed.

    Without ce_type the expected type is assumed; without ce_id the id is the value's sha256, so
    a plain JSON publisher still gets idempotent handling.
    """
    h = _header_map(headers)
    if value is None:
        raise EventDecodeError("record has no value (tombstone)")
    spec = h.get("ce_specversion", "1.0")
    if spec != "1.0":
        raise EventDecodeError(f"unsupported ce_specversion {spec!r}")
    type_name = h.get("ce_type") or (expected.DESCRIPTOR.full_name if expected else "")
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise EventDecodeError(f"unknown ce_type {type_name!r}")
    if expected is not None and cls is not expected:
        raise EventDecodeError(f"ce_type {type_name} where {expected.DESCRIPTOR.full_name} was expected")
    content_type = h.get("content-type", PROTOBUF).split(";")[0].strip().lower()
    message = cls()
    try:
        if content_type in (PROTOBUF, "application/x-protobuf"):
            message.ParseFromString(value)
        elif content_type == JSON:
            json_format.Parse(value.decode("utf-8"), message, ignore_unknown_fields=False)
        else:
            raise EventDecodeError(f"unsupported content-type {content_type!r}")
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        raise EventDecodeError(f"cannot decode {type_name} as {content_type}: {exc}") from exc
    extensions = {k: v for k, v in h.items() if k.startswith("ce_") and k[3:] not in _CORE}
    return Envelope(
        id=h.get("ce_id") or hashlib.sha256(value).hexdigest(),
        type=type_name,
        source=h.get("ce_source", ""),
        time=h.get("ce_time", ""),
        message=message,
        key=key,
        extensions=extensions,
    )


_CORE = {"specversion", "id", "type", "source", "time"}
