"""A real S3-compatible server (S3Proxy, started by the project's script) for the adapter-store tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vispod.devkit.local_s3 import S3Server, start_s3


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3(tmp_path_factory.mktemp("s3") / "data")
    yield server
    server.stop()
