"""Tests never leave the machine: in this process every connection goes to loopback and every name lookup is a stub.

`connect()` and `connect_ex()` of IP sockets to anything but loopback fail as in a network namespace with only `lo`
(ENETUNREACH). `getaddrinfo`, `gethostbyname` and `gethostbyname_ex` go through `stub_getaddrinfo`, which answers
numeric addresses and `localhost` itself and refuses every other name, so no DNS query leaves the machine. Each
attempt is also recorded, and the test that made it fails at teardown even when the code under test caught the
error (a refusal that looks like the expected one must not pass). Code that needs a name resolved in a test takes
a resolver (ImageFetcher(resolver=...)). Child processes (brokers, services) are outside this guard: CI runs the
suite in a network namespace with only `lo` (.ci/run). pytest-socket does the connect part too, but it restores
the real `connect` after each test and leaves `connect_ex` (kafka-python's) and name lookups alone.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
attempts: list[str] = []


def _numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


def stub_getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                     flags: int = 0) -> list:
    name = host.decode() if isinstance(host, bytes) else host
    if name is None or _numeric(name):
        return _real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
    if name.lower().rstrip(".") in LOOPBACK_NAMES:
        out = []
        for address in ("127.0.0.1", "::1"):  # /etc/hosts' order
            try:
                out += _real_getaddrinfo(address, port, family, type, proto, flags | socket.AI_NUMERICHOST)
            except socket.gaierror:
                continue  # the family asked for excludes it
        return out
    attempts.append(f"name lookup of {name!r}")
    raise socket.gaierror(socket.EAI_NONAME, f"{name!r}: tests resolve names through a stub (tests/loopback_only.py)")


def _stub_gethostbyname(name: str) -> str:
    return str(stub_getaddrinfo(name, None, socket.AF_INET)[0][4][0])


def _stub_gethostbyname_ex(name: str) -> tuple[str, list[str], list[str]]:
    return name, [], [str(info[4][0]) for info in stub_getaddrinfo(name, None, socket.AF_INET)]


def _off_machine(sock: socket.socket, address: Any) -> str | None:
    """The address a socket would reach off this machine; None for loopback and local (Unix) sockets."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return None
    host = str(address[0])
    try:
        if ipaddress.ip_address(host.split("%")[0]).is_loopback:
            return None
    except ValueError:
        pass  # a name: connect() would resolve it, which the stub refuses anyway
    return host


def _guarded_connect(sock: socket.socket, address: Any) -> None:
    host = _off_machine(sock, address)
    if host is not None:
        attempts.append(f"connection to {host}")
        raise OSError(errno.ENETUNREACH, f"tests stay on loopback (tests/loopback_only.py): {host}")
    return _real_connect(sock, address)


def _guarded_connect_ex(sock: socket.socket, address: Any) -> int:
    host = _off_machine(sock, address)
    if host is not None:
        attempts.append(f"connection to {host}")
        return errno.ENETUNREACH
    return _real_connect_ex(sock, address)


def install() -> None:
    """For the whole session: session fixtures' lookups are stubbed too."""
    socket.getaddrinfo = stub_getaddrinfo
    socket.gethostbyname = _stub_gethostbyname
    socket.gethostbyname_ex = _stub_gethostbyname_ex
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _stays_on_the_machine() -> Iterator[None]:
    attempts.clear()
    yield
    tried, attempts[:] = list(attempts), []
    if tried:
        pytest.fail(f"the test tried to leave the machine: {'; '.join(dict.fromkeys(tried))}", pytrace=False)
