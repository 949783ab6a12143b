"""`vispod adapters`: what a generator serves (lifecycle, canary share, routing), and signed admin commands.

    vispod adapters                                   # list: state of every adapter, the active one, the canary
    vispod adapters canary pod@3 --share 0.2 --key admin.key
    vispod adapters promote pod@3 --key admin.key     # CANARY/CANDIDATE -> ACTIVE
    vispod adapters rollback --key admin.key          # the active adapter -> RETIRED (the previous one serves)
    vispod adapters reject pod@3 --key admin.key

Commands are AdapterLifecycleChanged events signed with the admin's Ed25519 key (identity "admin") and published
on the compacted lifecycle topic, so every generator replica obeys them, now and after any restart.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from vispod.common.bus import EventPublisher
from vispod.common.grpc_server import client_channel
from vispod.common.kafka_address import bootstrap_from
from vispod.common.lifecycle_signing import sign_command
from vispod.common.settings import GrpcTlsSettings, KafkaSettings
from vispod.common.signing import Signer
from vispod.common.topics import Topic
from vispod.v1 import events_pb2, generator_pb2, generator_pb2_grpc

S = events_pb2.AdapterState
_TARGET = {"promote": S.ADAPTER_STATE_ACTIVE, "canary": S.ADAPTER_STATE_CANARY, "reject": S.ADAPTER_STATE_REJECTED}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapters", help="the generator's adapters (list), or a signed admin lifecycle command")
    p.add_argument("action", nargs="?", default="list", choices=["list", "promote", "canary", "rollback", "reject"])
    p.add_argument("adapter_id", nargs="?", default="", help="name@version (rollback: default the active one)")
    p.add_argument("--generator", default="127.0.0.1:8081", help="generator gRPC address (host:port)")
    p.add_argument("--key", type=Path, help="the admin's Ed25519 private key (commands only)")
    p.add_argument("--share", type=float, default=0.1, help="canary share of default traffic (canary)")
    p.add_argument("--reason", default="", help="recorded with the change")
    p.add_argument("--bootstrap", default=None, help="Kafka bootstrap (default: VISPOD_KAFKA_BOOTSTRAP or vispod up)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    listing = _list(args.generator)
    if args.action == "list":
        print(render(listing))
        return 0
    if args.key is None:
        raise SystemExit("--key (the admin's private key) is required: generators obey only signed commands")
    command = admin_command(listing, args.action, args.adapter_id, args.share, args.reason or f"admin: {args.action}")
    sign_command(command, Signer.from_file(args.key, "admin"))
    publisher = EventPublisher(KafkaSettings(bootstrap=bootstrap_from(args.bootstrap)), "admin")
    try:
        event_id = publisher.publish(Topic.ADAPTER_LIFECYCLE, command)
    finally:
        publisher.close()
    print(f"sent {args.action} {command.adapter_id} -> {S.Name(command.state).removeprefix('ADAPTER_STATE_')} "
          f"(signed by admin, event {event_id})")
    return 0


def admin_command(listing: generator_pb2.ListAdaptersResponse, action: str, adapter_id: str, share: float,
                  reason: str) -> events_pb2.AdapterLifecycleChanged:
    """The unsigned command for an admin action, checked against what the generator reports now."""
    states = {a.adapter_id: a.state for a in listing.adapters}
    adapter_id = adapter_id or (listing.active_adapter_id if action == "rollback" else "")
    if not adapter_id:
        raise SystemExit("no active adapter to roll back" if action == "rollback" else "an adapter id is required")
    if adapter_id not in states:
        raise SystemExit(f"the generator does not know {adapter_id}")
    if action == "rollback":
        target = {S.ADAPTER_STATE_ACTIVE: S.ADAPTER_STATE_RETIRED, S.ADAPTER_STATE_CANARY: S.ADAPTER_STATE_CANDIDATE}
        if states[adapter_id] not in target:
            raise SystemExit(f"{adapter_id} is {S.Name(states[adapter_id])}: only the active adapter or a canary "
                             "can be rolled back")
        state = target[states[adapter_id]]
    else:
        state = _TARGET[action]
    if action == "canary" and not 0 < share <= 1:
        raise SystemExit(f"--share must be in (0, 1], got {share}")
    now = Timestamp()
    now.GetCurrentTime()
    return events_pb2.AdapterLifecycleChanged(
        adapter_id=adapter_id, previous_state=states[adapter_id], state=state, reason=reason[:500],
        canary_share=share if action == "canary" else 0.0, changed_at=now)


def render(listing: generator_pb2.ListAdaptersResponse) -> str:
    rows = [("ADAPTER", "STATE", "TRAFFIC", "BASE MODEL")]
    canary = next((a for a in listing.adapters if a.state == S.ADAPTER_STATE_CANARY), None)
    for a in listing.adapters:
        state = S.Name(a.state).removeprefix("ADAPTER_STATE_")
        if a.state == S.ADAPTER_STATE_CANARY:
            traffic = f"{100 * a.canary_share:.0f}% (canary)"
        elif a.state == S.ADAPTER_STATE_ACTIVE:
            traffic = f"{100 * (1 - (canary.canary_share if canary else 0.0)):.0f}% (default)"
        else:
            traffic = "by id only" if a.state == S.ADAPTER_STATE_CANDIDATE else "-"
        rows.append((a.adapter_id, state, traffic, a.base_model_id))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"active: {listing.active_adapter_id or 'none (the base model serves)'}"
                 + (f"; canary: {canary.adapter_id} at {100 * canary.canary_share:.0f}%, sticky per image set"
                    if canary else ""))
    return "\n".join(lines)


def _list(address: str) -> generator_pb2.ListAdaptersResponse:
    with client_channel(address, GrpcTlsSettings()) as channel:
        return generator_pb2_grpc.GeneratorServiceStub(channel).ListAdapters(generator_pb2.ListAdaptersRequest(),
                                                                             timeout=15)
