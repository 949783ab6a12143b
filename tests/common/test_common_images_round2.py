"""Image access, second round of probes: slow-loris before the body, descriptors of folders, pixel budgets, odd
URIs, IPv4 addresses hidden in IPv6 ones."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from vispod.common.images import ImageAccessError, ImageFetcher, PixelBudget, decode_image
from vispod.common.settings import ImageAccessSettings


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG")  # a 1-bit canvas: tiny file, many pixels
    return buf.getvalue()


# -- 1: one deadline from connect to the last byte ----------------------------------------------


def _trickling_server(response: bytes, every_s: float) -> Iterator[int]:
    """A server that answers every connection by sending `response` one byte every `every_s` seconds."""
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.recv(4096)
                for b in response:
                    if stop.is_set():
                        break
                    try:
                        conn.sendall(bytes([b]))
                    except OSError:
                        break
                    time.sleep(every_s)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        srv.close()


@pytest.mark.parametrize("response", [
    b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 40 + b"\r\n\r\n",  # status line and headers
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 40 + b"1\r\nx\r\n",  # chunk-size line
], ids=["headers", "chunk-size"])
def test_a_server_trickling_before_the_body_is_cut_at_the_deadline(response: bytes) -> None:
    port = next(gen := _trickling_server(response, 0.1))
    try:
        fetcher = ImageFetcher(ImageAccessSettings(allowed_hosts=["127.0.0.1"], allow_plain_http=True,
                                                   allowed_networks=["127.0.0.0/8"], fetch_timeout_s=1.0))
        t0 = time.monotonic()
        with pytest.raises(ImageAccessError, match=r"took over 1.0 s"):
            fetcher.fetch(f"http://127.0.0.1:{port}/x.png")
        assert time.monotonic() - t0 < 1.8  # the server would trickle for 5 s and more
    finally:
        gen.close()


def test_a_tls_handshake_trickled_by_the_server_is_cut_at_the_deadline() -> None:
    port = next(gen := _trickling_server(b"\x16\x03\x01" + b"\x00" * 60, 0.1))  # a ServerHello that never ends
    try:
        fetcher = ImageFetcher(ImageAccessSettings(allowed_hosts=["127.0.0.1"], allowed_networks=["127.0.0.0/8"],
                                                   fetch_timeout_s=1.0))
        t0 = time.monotonic()
        with pytest.raises(ImageAccessError):
            fetcher.fetch(f"https://127.0.0.1:{port}/x.png")
        assert time.monotonic() - t0 < 1.8
    finally:
        gen.close()


# -- 3: a folder under a root: refused, no descriptor leaked -----------------------------------


def test_a_folder_under_a_root_is_refused_and_leaks_no_descriptor(tmp_path: Path) -> None:
    (tmp_path / "album").mkdir()
    fetcher = ImageFetcher(ImageAccessSettings(file_roots=[tmp_path]))
    uri = (tmp_path / "album").as_uri()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(200):
        with pytest.raises(ImageAccessError, match="is not a file"):
            fetcher.fetch(uri)
    assert len(os.listdir("/proc/self/fd")) - before < 5


# -- 5: pixels per image and per request -------------------------------------------------------


def test_a_small_file_declaring_a_huge_canvas_is_refused_before_decoding() -> None:
    data = _png(6300, 6300)
    assert len(data) < 100_000
    with pytest.raises(ImageAccessError, match=r"39690000 pixels \(6300x6300\), over the 25000000-pixel limit"):
        decode_image(data, ImageAccessSettings(), "big.png")


def test_a_request_of_many_images_is_refused_past_its_pixel_budget() -> None:
    settings = ImageAccessSettings(max_pixels=4_000_000, max_request_pixels=10_000_000)
    budget = PixelBudget(settings)
    data = _png(2000, 2000)
    decode_image(data, settings, "image 1", budget)
    decode_image(data, settings, "image 2", budget)
    with pytest.raises(ImageAccessError, match=r"image 3 .* 12000000 pixels, over the per-request budget of 10000000"):
        decode_image(data, settings, "image 3", budget)
    assert budget.spent == 8_000_000


# -- 7: odd URIs are refusals, not crashes -----------------------------------------------------


def test_a_nul_byte_in_a_file_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(_png(4, 4))
    fetcher = ImageFetcher(ImageAccessSettings(file_roots=[tmp_path]))
    for uri in (f"file://{tmp_path}/a.png%00.jpg", f"file://{tmp_path}/a%00"):
        with pytest.raises(ImageAccessError, match="NUL byte"):
            fetcher.fetch(uri)


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_port_out_of_range_is_refused(port: str) -> None:
    fetcher = ImageFetcher(ImageAccessSettings(allowed_hosts=["images.example"]),
                           resolver=lambda host, p: pytest.fail("no lookup for a bad URI"))
    with pytest.raises(ImageAccessError, match="bad port"):
        fetcher.fetch(f"https://images.example:{port}/x.png")


# -- 8: IPv4 inside IPv6 -----------------------------------------------------------------------


@pytest.mark.parametrize(("address", "why"), [
    ("2002:7f00:1::", r"loopback \(6to4 of 127.0.0.1\)"),
    ("2002:a9fe:a9fe::", r"link-local \(6to4 of 169.254.169.254\)"),
    ("2002:a00:1::1", r"private \(6to4 of 10.0.0.1\)"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", r"loopback \(Teredo of 127.0.0.1\)"),  # client 127.0.0.1 (inverted)
    ("64:ff9b::a9fe:a9fe", r"link-local \(NAT64 of 169.254.169.254\)"),
    ("64:ff9b:1::7f00:1", r"loopback \(NAT64 of 127.0.0.1\)"),
])
def test_non_public_ipv4_embedded_in_ipv6_is_refused(address: str, why: str) -> None:
    fetcher = ImageFetcher(ImageAccessSettings(allowed_hosts=["images.example"]),
                           resolver=lambda host, port: [address])
    with pytest.raises(ImageAccessError, match=f"resolves to a {why}"):
        fetcher.fetch("https://images.example/x.png")


def test_an_ipv6_address_carrying_a_public_ipv4_is_public() -> None:
    from ipaddress import ip_address

    from vispod.common.images import _non_public_kind

    assert _non_public_kind(ip_address("2002:5db8:d822::1")) == ""  # 6to4 of 93.184.216.34
