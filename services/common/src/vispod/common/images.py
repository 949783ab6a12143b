"""Image access by URI, with the security limits every service applies.

file:// only under configured roots (symlinks resolved first, so no traversal or symlink escape);
http(s):// only to allow-listed hosts, with size and time limits and no redirects elsewhere;
s3:// when boto3 is installed. Decoding checks bytes, pixels (decompression bombs) and format.
"""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from vispod.common.grpc_server import InvalidArgument
from vispod.common.settings import ImageAccessSettings

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp"}


class ImageAccessError(InvalidArgument):
    """An image URI or image that may not or cannot be used; the message says why."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        raise ImageAccessError(f"redirect to {newurl!r} refused")


class ImageFetcher:
    def __init__(self, settings: ImageAccessSettings) -> None:
        self.settings = settings
        self._opener = urllib.request.build_opener(_NoRedirect())

    def fetch(self, uri: str, expected_sha256: str = "") -> bytes:
        """The bytes behind a URI, after every access check; verifies sha256 when given."""
        if not uri:
            raise ImageAccessError("empty image URI")
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme == "file":
            data = self._read_file(parsed)
        elif parsed.scheme in ("http", "https"):
            data = self._read_http(uri, parsed)
        elif parsed.scheme == "s3":
            data = self._read_s3(parsed)
        else:
            raise ImageAccessError(f"unsupported URI scheme {parsed.scheme!r} in {uri!r}")
        if expected_sha256:
            digest = hashlib.sha256(data).hexdigest()
            if digest != expected_sha256.lower():
                raise ImageAccessError(f"sha256 mismatch for {uri}: expected {expected_sha256}, got {digest}")
        return data

    def load(self, uri: str, expected_sha256: str = "") -> Image.Image:
        """Fetches and decodes an image (RGB) within the byte, pixel and format limits."""
        return decode_image(self.fetch(uri, expected_sha256), self.settings, uri)

    def _read_file(self, parsed: urllib.parse.ParseResult) -> bytes:
        if parsed.netloc not in ("", "localhost"):
            raise ImageAccessError(f"file URI with a host ({parsed.netloc!r}) refused")
        raw = Path(urllib.parse.unquote(parsed.path))
        if not raw.is_absolute():
            raise ImageAccessError(f"file URI path must be absolute: {raw}")
        if not self.settings.file_roots:
            raise ImageAccessError("file:// images are disabled: no VISPOD_IMAGES_FILE_ROOTS configured")
        try:
            real = raw.resolve(strict=True)
        except (FileNotFoundError, RuntimeError) as exc:
            raise ImageAccessError(f"image not found: {raw}") from exc
        if not any(real.is_relative_to(root) for root in self.settings.file_roots):
            raise ImageAccessError(f"{raw} is outside the allowed image roots")
        if not real.is_file():
            raise ImageAccessError(f"{raw} is not a file")
        size = real.stat().st_size
        if size > self.settings.max_bytes:
            raise ImageAccessError(f"{raw} is {size} bytes, over the {self.settings.max_bytes}-byte limit")
        return real.read_bytes()

    def _read_http(self, uri: str, parsed: urllib.parse.ParseResult) -> bytes:
        if parsed.scheme == "http" and not self.settings.allow_plain_http:
            raise ImageAccessError(f"plain http refused for {uri}: use https or allow_plain_http")
        host = (parsed.hostname or "").lower()
        if host not in {h.lower() for h in self.settings.allowed_hosts}:
            raise ImageAccessError(f"host {host!r} is not in the allowed image hosts")
        try:
            with self._opener.open(uri, timeout=self.settings.fetch_timeout_s) as resp:
                length = resp.headers.get("Content-Length")
                if length and int(length) > self.settings.max_bytes:
                    raise ImageAccessError(f"{uri} is {length} bytes, over the {self.settings.max_bytes}-byte limit")
                data = resp.read(self.settings.max_bytes + 1)
        except urllib.error.HTTPError as exc:
            raise ImageAccessError(f"fetching {uri} failed: HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ImageAccessError(f"fetching {uri} failed: {exc}") from exc
        if len(data) > self.settings.max_bytes:
            raise ImageAccessError(f"{uri} is over the {self.settings.max_bytes}-byte limit")
        return data

    def _read_s3(self, parsed: urllib.parse.ParseResult) -> bytes:
        try:
            import boto3  # optional dependency
        except ImportError as exc:
            raise ImageAccessError("s3:// images need boto3 installed") from exc
        obj = boto3.client("s3").get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
        if obj["ContentLength"] > self.settings.max_bytes:
            raise ImageAccessError(f"s3 object is over the {self.settings.max_bytes}-byte limit")
        return obj["Body"].read()


def decode_image(data: bytes, settings: ImageAccessSettings, name: str = "image") -> Image.Image:
    """Decodes with limits: size, declared pixel count (before decoding), allowed formats; returns RGB."""
    if len(data) > settings.max_bytes:
        raise ImageAccessError(f"{name} is {len(data)} bytes, over the {settings.max_bytes}-byte limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in settings.allowed_formats:
                raise ImageAccessError(f"{name}: format {img.format} is not allowed")
            pixels = img.width * img.height
            if pixels > settings.max_pixels:
                raise ImageAccessError(f"{name} has {pixels} pixels, over the {settings.max_pixels}-pixel limit")
            img.load()
    except ImageAccessError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageAccessError(f"{name} cannot be decoded: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise ImageAccessError(f"{name} is corrupt: {exc}") from exc
    return img.convert("RGB")


def mime_type(img_format: str | None) -> str:
    return _MIME.get(img_format or "", "application/octet-stream")
