"""The suite's guard (tests/loopback_only.py): connections off the machine and name lookups fail, and are recorded
so that the test making them fails even when the code under test swallowed the error."""

from __future__ import annotations

import errno
import socket

import loopback_only
import pytest


def test_a_connection_off_the_machine_fails_and_is_recorded() -> None:
    with socket.socket() as s, pytest.raises(OSError) as err:
        s.connect(("192.0.2.1", 80))
    assert err.value.errno == errno.ENETUNREACH
    with socket.socket() as s:
        assert s.connect_ex(("169.254.169.254", 80)) == errno.ENETUNREACH
    tried, loopback_only.attempts[:] = list(loopback_only.attempts), []  # this test's own, on purpose
    assert tried == ["connection to 192.0.2.1", "connection to 169.254.169.254"]


def test_names_are_resolved_by_the_stub_only() -> None:
    assert {info[4][0] for info in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)} <= {"127.0.0.1",
                                                                                                    "::1"}
    assert socket.getaddrinfo("127.0.0.1", 80)[0][4][0] == "127.0.0.1"
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.org", 443)
    with pytest.raises(socket.gaierror):
        socket.gethostbyname("pypi.org")
    tried, loopback_only.attempts[:] = list(loopback_only.attempts), []
    assert tried == ["name lookup of 'example.org'", "name lookup of 'pypi.org'"]


def test_loopback_still_works() -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv, socket.create_connection(srv.getsockname()[:2], 5):
        pass
    assert loopback_only.attempts == []
