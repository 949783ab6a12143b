"""Image access by URI, with the security limits every service applies.

file:// only beneath configured roots: the file is opened relative to the root's directory
descriptor without leaving it (see vispod.common.beneath) and read from that one descriptor, so a
path swapped for a symlink mid-read cannot escape. http(s):// only to allow-listed hosts whose
resolved addresses are public (or in a configured network), IPv4 addresses embedded in IPv6 ones
(mapped, 6to4, Teredo, NAT64) included; the connection goes to the address that was checked; one
deadline bounds the whole fetch (resolving, connecting, TLS, status line, headers, body: a watchdog
shuts the socket when it passes); no redirects. s3:// only to allow-listed buckets, when boto3 is
installed. Decoding checks bytes, pixels (decompression bombs, and a budget per request) and format.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import http.client
import io
import ipaddress
import os
import socket
import ssl
import stat
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from vispod.common.beneath import ESCAPE_ERRNOS, open_beneath
from vispod.common.errors import InvalidArgument
from vispod.common.settings import ImageAccessSettings

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp"}
_CHUNK = 64 * 1024
_RESOLVERS = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="image-dns")

Resolver = Callable[[str, int], list[str]]


class ImageAccessError(InvalidArgument):
    """An image URI or image that may not or cannot be used; the message says why."""


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (TCP)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """IPv4 addresses an IPv6 address carries to a v4 host: mapped, 6to4, Teredo (server and client), NAT64."""
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    if addr.ipv4_mapped is not None:
        found.append(("IPv4-mapped", addr.ipv4_mapped))
    if addr.sixtofour is not None:
        found.append(("6to4", addr.sixtofour))
    if addr.teredo is not None:
        found += [("Teredo", v4) for v4 in addr.teredo]
    if any(addr in net for net in _NAT64):
        found.append(("NAT64", ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)))
    return found


def _non_public_kind(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Why an address is not a public one ('' when it is public)."""
    if isinstance(addr, ipaddress.IPv6Address):
        for how, v4 in _embedded_ipv4(addr):
            kind = _non_public_kind(v4)
            if kind:
                return kind if how == "IPv4-mapped" else f"{kind} ({how} of {v4})"
    for kind in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(addr, f"is_{kind}"):
            return kind.replace("_", "-")
    return "" if addr.is_global else "non-public"


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to one already-checked address; the Host header still names the host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _Watchdog:
    """Shuts a connection's socket when the fetch deadline passes, so no read, however slowly the server
    trickles (status line, headers, chunk sizes, TLS records), outlives it."""

    def __init__(self, conn: http.client.HTTPConnection, remaining: float) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(remaining, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            sock = None if self._done else self._conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


class ImageFetcher:
    def __init__(self, settings: ImageAccessSettings, resolver: Resolver = resolve_host) -> None:
        self.settings = settings
        self._resolve = resolver
        self._networks = [ipaddress.ip_network(n, strict=False) for n in settings.allowed_networks]
        self._tls = ssl.create_default_context()

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
        if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256.lower():
            # The actual digest is not echoed: it would tell a caller what an object it may not name holds.
            raise ImageAccessError(f"sha256 mismatch for {uri}")
        return data

    def load(self, uri: str, expected_sha256: str = "", budget: PixelBudget | None = None) -> Image.Image:
        """Fetches and decodes an image (RGB) within the byte, pixel and format limits (and a request's budget)."""
        return decode_image(self.fetch(uri, expected_sha256), self.settings, uri, budget)

    # -- file:// ---------------------------------------------------------------------------------

    def _beneath_root(self, raw: Path) -> tuple[Path, str] | None:
        """(root, path relative to it) for the root `raw` lies in; None when it lies in none."""
        lexical = Path(os.path.normpath(raw))
        candidates = [lexical]
        # A root reached through a symlinked prefix; the open below still enforces the root.
        with contextlib.suppress(OSError, RuntimeError):
            candidates.append(lexical.parent.resolve() / lexical.name)
        for path in candidates:
            for root in self.settings.file_roots:
                if path != root and path.is_relative_to(root):
                    return root, path.relative_to(root).as_posix()
        return None

    def _read_file(self, parsed: urllib.parse.ParseResult) -> bytes:
        if parsed.netloc not in ("", "localhost"):
            raise ImageAccessError(f"file URI with a host ({parsed.netloc!r}) refused")
        path = urllib.parse.unquote(parsed.path)
        if "\x00" in path:  # the kernel would stop at it: "a.png%00.jpg" would open "a.png"
            raise ImageAccessError("file URI path contains a NUL byte (%00): refused")
        raw = Path(path)
        if not raw.is_absolute():
            raise ImageAccessError(f"file URI path must be absolute: {raw}")
        if not self.settings.file_roots:
            raise ImageAccessError("file:// images are disabled: no VISPOD_IMAGES_FILE_ROOTS configured")
        found = self._beneath_root(raw)
        if found is None:
            raise ImageAccessError(f"{raw} is outside the allowed image roots")
        root, rel = found
        try:
            fd = open_beneath(root, rel, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError as exc:
            raise ImageAccessError(f"image not found: {raw}") from exc
        except OSError as exc:
            if exc.errno in ESCAPE_ERRNOS:
                raise ImageAccessError(f"{raw} is outside the allowed image roots") from exc
            raise ImageAccessError(f"{raw} cannot be opened: {exc.strerror}") from exc
        try:  # the descriptor is ours from here: closed whatever happens (a folder fails fdopen)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ImageAccessError(f"{raw} is not a file")
            if info.st_size > self.settings.max_bytes:
                raise ImageAccessError(f"{raw} is {info.st_size} bytes, over the {self.settings.max_bytes}-byte limit")
            data = _read_fd(fd, self.settings.max_bytes + 1)
        except OSError as exc:
            raise ImageAccessError(f"{raw} cannot be read: {exc.strerror}") from exc
        finally:
            os.close(fd)
        if len(data) > self.settings.max_bytes:
            raise ImageAccessError(f"{raw} is over the {self.settings.max_bytes}-byte limit")
        return data

    # -- http(s):// ------------------------------------------------------------------------------

    def _checked_address(self, host: str, port: int, deadline: float) -> str:
        """The first resolved address of `host`; refuses when any is non-public and not configured."""
        lookup = _RESOLVERS.submit(self._resolve, host, port)  # getaddrinfo has no timeout of its own
        try:
            answers = lookup.result(timeout=max(deadline - time.monotonic(), 0.001))
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in answers]
        except concurrent.futures.TimeoutError as exc:
            raise ImageAccessError(f"resolving image host {host!r} took over {self.settings.fetch_timeout_s} s") \
                from exc
        except (OSError, ValueError) as exc:
            raise ImageAccessError(f"cannot resolve image host {host!r}: {exc}") from exc
        if not addresses:
            raise ImageAccessError(f"image host {host!r} has no address")
        for addr in addresses:
            kind = _non_public_kind(addr)
            if kind and not any(addr in net for net in self._networks if net.version == addr.version):
                raise ImageAccessError(
                    f"image host {host!r} resolves to a {kind} address ({addr}); "
                    "allow it with VISPOD_IMAGES_ALLOWED_NETWORKS")
        return str(addresses[0])

    def _read_http(self, uri: str, parsed: urllib.parse.ParseResult) -> bytes:
        if parsed.scheme == "http" and not self.settings.allow_plain_http:
            raise ImageAccessError(f"plain http refused for {uri}: use https or allow_plain_http")
        host = (parsed.hostname or "").lower()
        if host not in {h.lower() for h in self.settings.allowed_hosts}:
            raise ImageAccessError(f"host {host!r} is not in the allowed image hosts")
        try:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
        except ValueError as exc:  # out of range or not a number
            raise ImageAccessError(f"bad port in image URI {uri!r}: {exc}") from None
        deadline = time.monotonic() + self.settings.fetch_timeout_s
        address = self._checked_address(host, port, deadline)
        remaining = max(deadline - time.monotonic(), 0.001)
        conn: http.client.HTTPConnection = (
            _PinnedHTTPS(host, port, address, remaining, self._tls) if parsed.scheme == "https"
            else _PinnedHTTP(host, port, address, remaining))
        target = parsed.path or "/"
        if parsed.query:
            target += "?" + parsed.query
        watchdog = _Watchdog(conn, remaining)
        try:
            conn.request("GET", target, headers={"Accept": "image/*", "Connection": "close"})
            resp = conn.getresponse()
            if 300 <= resp.status < 400:
                raise ImageAccessError(f"redirect to {resp.getheader('Location')!r} refused")
            if resp.status != 200:
                raise ImageAccessError(f"fetching {uri} failed: HTTP {resp.status}")
            length = resp.getheader("Content-Length")
            if length and length.isdigit() and int(length) > self.settings.max_bytes:
                raise ImageAccessError(f"{uri} is {length} bytes, over the {self.settings.max_bytes}-byte limit")
            data = self._read_body(resp, conn, deadline, uri)
        except ImageAccessError:
            raise
        except (http.client.HTTPException, OSError) as exc:
            if time.monotonic() >= deadline:
                raise ImageAccessError(f"fetching {uri} took over {self.settings.fetch_timeout_s} s") from exc
            raise ImageAccessError(f"fetching {uri} failed: {exc}") from exc
        finally:
            watchdog.cancel()
            conn.close()
        if time.monotonic() >= deadline:  # the watchdog cut a body short that happened to parse
            raise ImageAccessError(f"fetching {uri} took over {self.settings.fetch_timeout_s} s")
        return data

    def _read_body(self, resp: http.client.HTTPResponse, conn: http.client.HTTPConnection,
                   deadline: float, uri: str) -> bytes:
        """The body, within the byte limit and the one deadline (each read waits at most what is left)."""
        buf = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ImageAccessError(f"fetching {uri} took over {self.settings.fetch_timeout_s} s")
            if conn.sock is not None:
                conn.sock.settimeout(remaining)
            chunk = resp.read1(_CHUNK)
            if not chunk:
                return bytes(buf)
            buf += chunk
            if len(buf) > self.settings.max_bytes:
                raise ImageAccessError(f"{uri} is over the {self.settings.max_bytes}-byte limit")

    # -- s3:// -----------------------------------------------------------------------------------

    def _read_s3(self, parsed: urllib.parse.ParseResult) -> bytes:
        bucket = parsed.netloc
        if bucket not in self.settings.s3_buckets:
            raise ImageAccessError(f"s3 bucket {bucket!r} is not in the allowed image buckets")
        try:
            import boto3  # optional dependency
        except ImportError as exc:
            raise ImageAccessError("s3:// images need boto3 installed") from exc
        obj = boto3.client("s3").get_object(Bucket=bucket, Key=parsed.path.lstrip("/"))
        if obj["ContentLength"] > self.settings.max_bytes:
            raise ImageAccessError(f"s3 object is over the {self.settings.max_bytes}-byte limit")
        data = obj["Body"].read(self.settings.max_bytes + 1)
        if len(data) > self.settings.max_bytes:
            raise ImageAccessError(f"s3 object is over the {self.settings.max_bytes}-byte limit")
        return data


def _read_fd(fd: int, limit: int) -> bytes:
    buf = bytearray()
    while len(buf) < limit:
        chunk = os.read(fd, min(_CHUNK, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


class PixelBudget:
    """Decoded pixels one request may spend over all its images (VISPOD_IMAGES_MAX_REQUEST_PIXELS): each image
    is charged its declared size before it is decoded, so a request of many big canvases is refused, not paid."""

    def __init__(self, settings: ImageAccessSettings) -> None:
        self.limit = settings.max_request_pixels
        self.spent = 0

    def charge(self, pixels: int, name: str) -> None:
        if self.spent + pixels > self.limit:
            raise ImageAccessError(
                f"{name} ({pixels} pixels) would bring the request's images to {self.spent + pixels} pixels, over "
                f"the per-request budget of {self.limit} (VISPOD_IMAGES_MAX_REQUEST_PIXELS)")
        self.spent += pixels


def decode_image(data: bytes, settings: ImageAccessSettings, name: str = "image",
                 budget: PixelBudget | None = None) -> Image.Image:
    """Decodes with limits: size, declared pixel count (before decoding; per image, and against the request's
    `budget` when given), allowed formats; returns RGB."""
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
                raise ImageAccessError(f"{name} has {pixels} pixels ({img.width}x{img.height}), over the "
                                       f"{settings.max_pixels}-pixel limit (VISPOD_IMAGES_MAX_PIXELS)")
            if budget is not None:
                budget.charge(pixels, name)
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
