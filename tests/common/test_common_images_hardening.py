"""Image access under attack: symlink races, slow servers, DNS to private addresses, s3 buckets, digests."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest
from PIL import Image
from service_fixtures import serve_http

from vispod.common.images import ImageAccessError, ImageFetcher
from vispod.common.settings import ImageAccessSettings


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buf, "JPEG")
    return buf.getvalue()


# -- 9: file:// opened beneath the root --------------------------------------------------------


def test_swapping_a_folder_for_a_symlink_never_escapes_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "album").mkdir(parents=True)
    outside.mkdir()
    inside_bytes, secret_bytes = _jpeg((10, 200, 10)), _jpeg((200, 10, 10))
    (root / "album" / "1.jpg").write_bytes(inside_bytes)
    (outside / "1.jpg").write_bytes(secret_bytes)
    fetcher = ImageFetcher(ImageAccessSettings(file_roots=[root]))
    uri = (root / "album" / "1.jpg").as_uri()
    stop = threading.Event()

    def swap() -> None:  # album <-> symlink to outside, as fast as possible
        real, link = root / "album", root / "album.real"
        while not stop.is_set():
            os.rename(real, link)
            os.symlink(outside, real)
            os.unlink(real)
            os.rename(link, real)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    reads, refused, escaped, other = 0, 0, 0, []
    t_end = time.monotonic() + 3.0
    try:
        while time.monotonic() < t_end:
            try:
                data = fetcher.fetch(uri)
            except ImageAccessError:
                refused += 1
                continue
            except Exception as exc:
                other.append(repr(exc))
                continue
            reads += 1
            escaped += data == secret_bytes
    finally:
        stop.set()
        swapper.join()
    assert escaped == 0, f"{escaped} reads escaped the root ({reads} reads)"
    assert not other, f"uncaught errors: {other[:3]}"
    assert reads > 0 and refused > 0  # the race really ran both ways


def test_a_symlinked_folder_leading_out_is_refused_and_a_path_with_dotdot_too(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "x.jpg").write_bytes(_jpeg((1, 2, 3)))
    (root / "door").symlink_to(outside)
    fetcher = ImageFetcher(ImageAccessSettings(file_roots=[root]))
    with pytest.raises(ImageAccessError, match="outside the allowed image roots"):
        fetcher.fetch(f"file://{root}/door/x.jpg")
    with pytest.raises(ImageAccessError, match="outside the allowed image roots"):
        fetcher.fetch(f"file://{root}/door/../../outside/x.jpg")


def test_a_fifo_under_the_root_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(ImageAccessError, match="not a file"):
        ImageFetcher(ImageAccessSettings(file_roots=[tmp_path])).fetch((tmp_path / "pipe.jpg").as_uri())


# -- 10, 11: http(s) ---------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    hosts_seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Handler.hosts_seen.append(self.headers.get("Host", ""))
        body = _jpeg((5, 5, 5))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/trickle.jpg":  # one byte every 0.3 s
            for b in body:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(0.3)
        else:
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def server() -> Iterator[int]:
    yield from serve_http(_Handler, daemon_threads=True)


def test_one_deadline_for_the_whole_fetch(server: int) -> None:
    fetcher = ImageFetcher(ImageAccessSettings(
        allowed_hosts=["127.0.0.1"], allow_plain_http=True, allowed_networks=["127.0.0.0/8"], fetch_timeout_s=1.0))
    t0 = time.monotonic()
    with pytest.raises(ImageAccessError, match=r"took over 1.0 s"):
        fetcher.fetch(f"http://127.0.0.1:{server}/trickle.jpg")
    assert time.monotonic() - t0 < 1.8


@pytest.mark.parametrize(("host", "kind"), [
    ("169.254.169.254", "link-local"), ("127.0.0.1", "loopback"), ("10.1.2.3", "private"),
    ("192.168.0.10", "private"), ("::1", "loopback"), ("::ffff:169.254.169.254", "link-local"),
])
def test_non_public_addresses_are_refused_unless_configured(host: str, kind: str) -> None:
    fetcher = ImageFetcher(ImageAccessSettings(allowed_hosts=[host], allow_plain_http=True))
    literal = f"[{host}]" if ":" in host else host
    with pytest.raises(ImageAccessError, match=f"resolves to a {kind} address"):
        fetcher.fetch(f"http://{literal}:9/x.jpg")


def test_an_allow_listed_name_that_resolves_to_loopback_is_refused(server: int) -> None:
    # 'localhost' is resolved by the default resolver (the tests' stub answers it as /etc/hosts does).
    fetcher = ImageFetcher(ImageAccessSettings(allowed_hosts=["localhost"], allow_plain_http=True))
    with pytest.raises(ImageAccessError, match="resolves to a loopback address"):
        fetcher.fetch(f"http://localhost:{server}/ok.jpg")
    allowed = ImageFetcher(ImageAccessSettings(
        allowed_hosts=["localhost"], allow_plain_http=True, allowed_networks=["127.0.0.0/8", "::1/128"]))
    try:
        assert allowed.load(f"http://localhost:{server}/ok.jpg").size == (16, 16)
    except ImageAccessError as exc:  # ::1 first and the server listens on IPv4 only
        assert "Connection refused" in str(exc)


def test_the_connection_goes_to_the_address_that_was_checked(server: int) -> None:
    """The name is resolved once, checked, and that address is dialled; the Host header keeps the name."""
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])  # a rebinding resolver: 2nd answer differs
    fetcher = ImageFetcher(
        ImageAccessSettings(allowed_hosts=["images.example"], allow_plain_http=True, allowed_networks=["127.0.0.1/32"]),
        resolver=lambda host, port: next(answers))
    _Handler.hosts_seen.clear()
    assert fetcher.load(f"http://images.example:{server}/ok.jpg").size == (16, 16)
    assert _Handler.hosts_seen == [f"images.example:{server}"]


def test_a_slow_resolver_counts_against_the_deadline() -> None:
    def slow_dns(host: str, port: int) -> list[str]:
        time.sleep(3)
        return ["93.184.216.34"]

    fetcher = ImageFetcher(ImageAccessSettings(allowed_hosts=["images.example"], fetch_timeout_s=0.5),
                           resolver=slow_dns)
    t0 = time.monotonic()
    with pytest.raises(ImageAccessError, match=r"resolving image host 'images\.example' took over 0\.5 s"):
        fetcher.fetch("https://images.example/x.jpg")
    assert time.monotonic() - t0 < 1.5


def test_unresolvable_host_is_a_refusal() -> None:
    def nxdomain(host: str, port: int) -> list[str]:  # what the system resolver says of such a name, asked nobody
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    fetcher = ImageFetcher(ImageAccessSettings(allowed_hosts=["no-such-host.invalid"]), resolver=nxdomain)
    with pytest.raises(ImageAccessError, match="cannot resolve"):
        fetcher.fetch("https://no-such-host.invalid/x.jpg")


def test_allowed_networks_are_validated() -> None:
    with pytest.raises(ValueError):
        ImageAccessSettings(allowed_networks=["10.0.0.0/33"])


# -- 12: s3 buckets, digests -------------------------------------------------------------------


def test_s3_buckets_are_allow_listed() -> None:
    with pytest.raises(ImageAccessError, match="bucket 'private-bucket' is not in the allowed image buckets"):
        ImageFetcher(ImageAccessSettings()).fetch("s3://private-bucket/secret.jpg")


def test_sha256_mismatch_does_not_reveal_the_digest(tmp_path: Path) -> None:
    data = _jpeg((9, 9, 9))
    (tmp_path / "a.jpg").write_bytes(data)
    with pytest.raises(ImageAccessError, match="sha256 mismatch") as err:
        ImageFetcher(ImageAccessSettings(file_roots=[tmp_path])).fetch((tmp_path / "a.jpg").as_uri(), "0" * 64)
    assert hashlib.sha256(data).hexdigest() not in str(err.value)

