"""The generator's gRPC surface under real conditions: clients that give up, retries in a stream, TLS and
who may administer adapters."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import grpc
import pytest
from gen_helpers import GOOD_DIALOGUE, Reply, generator_settings, make_event
from prometheus_client import REGISTRY

from vispod.common.settings import GrpcTlsSettings
from vispod.generator.service import build
from vispod.v1 import generator_pb2, generator_pb2_grpc

SLOW = Reply(GOOD_DIALOGUE * 4, delay_s=0.05)  # ~90 pieces over ~4.5 s


def _stub(channel: grpc.Channel) -> generator_pb2_grpc.GeneratorServiceStub:
    return generator_pb2_grpc.GeneratorServiceStub(channel)


def _in_flight() -> float:
    return REGISTRY.get_sample_value("vispod_generator_in_flight_requests", {"backend": "openai"}) or 0.0


def _wait_stopped(engine, total_pieces: int) -> int:
    """Pieces the engine sent once it stopped sending (the generator closed its stream) or finished."""
    before = -1
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        time.sleep(0.6)
        if engine.pieces_sent == before or engine.pieces_sent >= total_pieces:
            break
        before = engine.pieces_sent
    return engine.pieces_sent


@pytest.mark.parametrize("rpc", ["Generate", "StreamGenerate"])
def test_a_cancelled_client_stops_the_generation(story_dir, kafka, engine, rpc: str) -> None:
    s = generator_settings(story_dir, kafka, backend="openai", openai_url=engine.url, consume=False, max_attempts=1)
    handle = build(s).start()
    engine.replies = [SLOW]
    total = len(range(0, len(SLOW.text), 17))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{handle.grpc_port}") as channel:
            req = generator_pb2.GenerateRequest(image_set=make_event(story_dir))
            if rpc == "Generate":
                future = _stub(channel).Generate.future(req, timeout=60)
                while engine.pieces_sent < 5:
                    time.sleep(0.02)
                future.cancel()
            else:
                call = _stub(channel).StreamGenerate(req, timeout=60)
                next(call)  # the attempt marker, then the first turn
                next(call)
                call.cancel()
            sent = _wait_stopped(engine, total)
        assert sent < total / 2, f"the engine kept streaming after the client left ({sent}/{total} pieces)"
        assert engine.disconnected
        deadline = time.monotonic() + 10
        while _in_flight() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _in_flight() == 0  # the slot is free again
    finally:
        handle.stop()


def test_stream_marks_each_attempt(story_dir, kafka, engine) -> None:
    engine.replies = [Reply("Speaker 1: I talk alone.\nSpeaker 2: no.\nSpeaker 1: Still alone?\nSpeaker 5: who?\n"),
                      Reply(GOOD_DIALOGUE)]
    s = generator_settings(story_dir, kafka, backend="openai", openai_url=engine.url, consume=False)
    handle = build(s).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{handle.grpc_port}") as channel:
            req = generator_pb2.GenerateRequest(image_set=make_event(story_dir))
            chunks = list(_stub(channel).StreamGenerate(req, timeout=60))
    finally:
        handle.stop()
    kinds = [c.WhichOneof("chunk") for c in chunks]
    marks = [i for i, k in enumerate(kinds) if k == "attempt"]
    assert [chunks[i].attempt.attempt for i in marks] == [1, 2] and marks[0] == 0
    assert "unknown speaker label" in chunks[marks[1]].attempt.reason
    assert marks[1] > 1  # the malformed attempt did stream turns before the marker
    result = chunks[-1].result
    retried_turns = [c.turn for c in chunks[marks[1] + 1:-1]]
    assert result.attempts == 2 and list(result.dialogue.turns) == retried_turns


# --- TLS and admin identities ---------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1/localhost, and client certificates 'vispod-gate' and 'intruder'."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=vispod-test-ca", cwd=d)
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, ext in (("server", "server.ext"), ("vispod-gate", None), ("intruder", None)):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", *(["-extfile", ext] if ext else []), cwd=d)
    return d


def _client(pki: Path, port: int, who: str | None) -> grpc.Channel:
    tls = GrpcTlsSettings(ca_file=pki / "ca.crt", cert_file=pki / f"{who}.crt" if who else None,
                          key_file=pki / f"{who}.key" if who else None)
    from vispod.common.grpc_server import client_channel

    return client_channel(f"127.0.0.1:{port}", tls)


def _update(channel: grpc.Channel) -> grpc.StatusCode:
    promote = generator_pb2.UpdateAdapterRequest.ACTION_PROMOTE
    req = generator_pb2.UpdateAdapterRequest(adapter_id="pod@9", action=promote)
    try:
        _stub(channel).UpdateAdapter(req, timeout=20)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_mtls_and_an_identity_check_on_admin_rpcs(story_dir, kafka, engine, pki: Path) -> None:
    tls = GrpcTlsSettings(cert_file=pki / "server.crt", key_file=pki / "server.key", ca_file=pki / "ca.crt",
                          admin_identities=["vispod-gate"])
    s = generator_settings(story_dir, kafka, backend="openai", openai_url=engine.url, consume=False, grpc_tls=tls)
    handle = build(s).start()
    port = handle.grpc_port
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as plain:  # no TLS at all: no connection
            with pytest.raises(grpc.RpcError) as err:
                _stub(plain).ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        with _client(pki, port, None) as anonymous:  # TLS without a client certificate: refused (mTLS)
            with pytest.raises(grpc.RpcError) as err:
                _stub(anonymous).ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        with _client(pki, port, "intruder") as intruder:  # a valid client may read, not administer
            _stub(intruder).ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=10)
            assert _update(intruder) == grpc.StatusCode.PERMISSION_DENIED
        with _client(pki, port, "vispod-gate") as gate:  # the allowed identity reaches the registry
            assert _update(gate) not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAVAILABLE)
    finally:
        handle.stop()


def test_without_mtls_admin_rpcs_are_refused_unless_opened_for_development(story_dir, kafka, engine, pki: Path) -> None:
    tls = GrpcTlsSettings(cert_file=pki / "server.crt", key_file=pki / "server.key", admin_open_without_mtls=False)
    s = generator_settings(story_dir, kafka, backend="openai", openai_url=engine.url, consume=False, grpc_tls=tls)
    handle = build(s).start()
    try:
        with _client(pki, handle.grpc_port, None) as channel:  # server-only TLS: nobody can be identified
            _stub(channel).ListAdapters(generator_pb2.ListAdaptersRequest(), timeout=10)
            assert _update(channel) == grpc.StatusCode.PERMISSION_DENIED
    finally:
        handle.stop()


def test_tls_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="key_file"):
        GrpcTlsSettings(cert_file=Path("/x.crt"))
