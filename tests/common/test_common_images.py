"""Image access by URI: every way in is checked, every refusal says why."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from PIL import Image
from service_fixtures import serve_http

from vispod.common.images import ImageAccessError, ImageFetcher, decode_image
from vispod.common.settings import ImageAccessSettings


def _jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "ok.jpg").write_bytes(_jpeg())
    (tmp_path / "secret.txt").write_text("top secret")
    return tmp_path / "images"


@pytest.fixture
def fetcher(root: Path) -> ImageFetcher:
    return ImageFetcher(ImageAccessSettings(file_roots=[root], max_bytes=200_000, max_pixels=1_000_000))


def test_file_under_a_root_loads(fetcher: ImageFetcher, root: Path) -> None:
    data = (root / "ok.jpg").read_bytes()
    img = fetcher.load((root / "ok.jpg").as_uri(), hashlib.sha256(data).hexdigest())
    assert img.size == (64, 48) and img.mode == "RGB"


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("file://{root}/../secret.txt", "outside the allowed image roots"),
        ("file://{root}/%2e%2e/secret.txt", "outside the allowed image roots"),
        ("file://{root}/missing.jpg", "not found"),
        ("file://evil.example{root}/ok.jpg", "with a host"),
        ("ftp://example.com/x.jpg", "unsupported URI scheme"),
        ("", "empty image URI"),
        ("https://not-allowed.example/x.jpg", "not in the allowed image hosts"),
        ("http://127.0.0.1:1/x.jpg", "plain http refused"),
    ],
)
def test_refusals(fetcher: ImageFetcher, root: Path, uri: str, reason: str) -> None:
    with pytest.raises(ImageAccessError, match=reason):
        fetcher.fetch(uri.format(root=root))


def test_symlink_escape_is_refused(fetcher: ImageFetcher, root: Path) -> None:
    (root / "link.jpg").symlink_to(root.parent / "secret.txt")
    with pytest.raises(ImageAccessError, match="outside the allowed image roots"):
        fetcher.fetch((root / "link.jpg").as_uri())


def test_sha256_mismatch(fetcher: ImageFetcher, root: Path) -> None:
    with pytest.raises(ImageAccessError, match="sha256 mismatch"):
        fetcher.fetch((root / "ok.jpg").as_uri(), "0" * 64)


def test_no_roots_means_no_files(root: Path) -> None:
    with pytest.raises(ImageAccessError, match="disabled"):
        ImageFetcher(ImageAccessSettings()).fetch((root / "ok.jpg").as_uri())


def test_oversized_file(root: Path) -> None:
    (root / "big.jpg").write_bytes(_jpeg((1500, 1500)) + b"\0" * 300_000)
    small = ImageFetcher(ImageAccessSettings(file_roots=[root], max_bytes=100_000))
    with pytest.raises(ImageAccessError, match="over the 100000-byte limit"):
        small.fetch((root / "big.jpg").as_uri())


def test_corrupt_jpeg() -> None:
    data = _jpeg()[:200]
    with pytest.raises(ImageAccessError, match=r"corrupt|cannot be decoded"):
        decode_image(data, ImageAccessSettings(), "cut.jpg")
    with pytest.raises(ImageAccessError, match="cannot be decoded"):
        decode_image(b"not an image at all", ImageAccessSettings(), "junk.jpg")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, "PNG")  # 400 Mpx, a few kB compressed
    data = buf.getvalue()
    assert len(data) < 200_000
    with pytest.raises(ImageAccessError, match=r"pixel|cannot be decoded"):
        decode_image(data, ImageAccessSettings(max_pixels=10_000_000), "bomb.png")


def test_format_allowlist() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "TIFF")
    with pytest.raises(ImageAccessError, match="format TIFF is not allowed"):
        decode_image(buf.getvalue(), ImageAccessSettings(), "x.tif")


class _Images(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/ok.jpg":
            body = _jpeg()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/redirect.jpg":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.end_headers()
        elif self.path == "/huge.jpg":
            self.send_response(200)
            self.send_header("Content-Length", "999999999")
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def http_server() -> Iterator[str]:
    for port in serve_http(_Images):
        yield f"http://127.0.0.1:{port}"


def test_http_from_an_allowed_host(http_server: str) -> None:
    fetcher = ImageFetcher(ImageAccessSettings(allowed_hosts=["127.0.0.1"], allow_plain_http=True,
                                               allowed_networks=["127.0.0.0/8"]))
    assert fetcher.load(f"{http_server}/ok.jpg").size == (64, 48)
    with pytest.raises(ImageAccessError, match=r"redirect .* refused"):
        fetcher.fetch(f"{http_server}/redirect.jpg")
    with pytest.raises(ImageAccessError, match="byte limit"):
        fetcher.fetch(f"{http_server}/huge.jpg")
    with pytest.raises(ImageAccessError, match="HTTP 404"):
        fetcher.fetch(f"{http_server}/missing.jpg")
