"""Admin RPCs are closed unless mutual TLS identifies an admin: a plaintext UpdateAdapter is refused by default
(the image binds 0.0.0.0 and compose uses host networking), and opening it for development is said loudly."""

from __future__ import annotations

import logging

import grpc
import pytest
from gen_helpers import generator_settings

from vispod.common.settings import GrpcTlsSettings
from vispod.generator.service import build
from vispod.v1 import generator_pb2, generator_pb2_grpc

PROMOTE = generator_pb2.UpdateAdapterRequest(adapter_id="pod@9",
                                             action=generator_pb2.UpdateAdapterRequest.ACTION_PROMOTE)


def _update(port: int) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        stub.ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=10)  # reading stays open
        try:
            stub.UpdateAdapter(PROMOTE, timeout=20)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def test_admin_rpcs_are_refused_without_mtls_by_default(story_dir, kafka, engine, monkeypatch) -> None:
    monkeypatch.delenv("VISPOD_GRPC_TLS_ADMIN_OPEN_WITHOUT_MTLS", raising=False)
    s = generator_settings(story_dir, kafka, backend="openai", openai_url=engine.url, consume=False)
    assert s.grpc_tls.admin_open_without_mtls is False
    handle = build(s).start()
    try:
        code, details = _update(handle.grpc_port)
    finally:
        handle.stop()
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "VISPOD_GRPC_TLS_ADMIN_OPEN_WITHOUT_MTLS" in details  # the refusal names the setting that opens it


def test_opening_them_is_explicit_and_logged_as_a_warning(story_dir, kafka, engine,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    s = generator_settings(story_dir, kafka, backend="openai", openai_url=engine.url, consume=False,
                           grpc_tls=GrpcTlsSettings(admin_open_without_mtls=True))
    with caplog.at_level(logging.WARNING):
        handle = build(s).start()
    try:
        code, _ = _update(handle.grpc_port)
    finally:
        handle.stop()
    assert code != grpc.StatusCode.PERMISSION_DENIED  # past the gate (pod@9 is unknown: refused for that)
    opened = [r for r in caplog.records if "admin RPCs are OPEN" in r.getMessage()]
    assert opened and opened[0].levelno == logging.WARNING
    assert "VISPOD_GRPC_TLS_ADMIN_OPEN_WITHOUT_MTLS=true" in opened[0].getMessage()
