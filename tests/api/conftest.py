"""Fixtures shared by the API tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import ServerProcess, create_key


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A ``--auth sigv4`` server of this test module, and a key of its default account."""
    data = tmp_path_factory.mktemp("secured") / "data"
    key = create_key(data)
    srv = ServerProcess(data, args=("--auth", "sigv4")).start()
    yield srv, key
    srv.stop()
