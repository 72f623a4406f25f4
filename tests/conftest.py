from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from support import ServerProcess, ShapeChecker, lambda_client

_names = itertools.count()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(
        tmp_path_factory.mktemp("brazier") / "data", prewarm="python3.11,provided.al2023"
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def shapes() -> ShapeChecker:
    return ShapeChecker()


@pytest.fixture
def client(server: ServerProcess, shapes: ShapeChecker) -> Any:
    return lambda_client(server.url, checker=shapes)


@pytest.fixture
def raw_client(server: ServerProcess, shapes: ShapeChecker) -> Any:
    """A client that skips botocore's own checks, so the server's validation is what answers."""
    return lambda_client(server.url, checker=shapes, validate=False)


@pytest.fixture
def fname(request: pytest.FixtureRequest) -> str:
    base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:40]
    return f"{base}-{next(_names)}"
