"""tests/vm/ runs inside the cgroup v2 VM of scripts/vm-test.sh (``make test-v2``); on any other
host (v1, hybrid: this development machine and CI's own) every test here is a skip."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from brazier.sandbox.cgroup_mode import CgroupMode, detect

from support import ServerProcess

ON_V2 = detect() is CgroupMode.V2 and os.geteuid() == 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs a cgroup v2 host as root: make test-v2 boots one")
    for item in items:
        if "tests/vm/" in str(item.fspath):
            item.add_marker(pytest.mark.sandbox)
            item.add_marker(pytest.mark.timeout(400))  # emulated CPU, shared host
            if not ON_V2:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The suite's server, given the time an emulated (TCG) guest needs to import and start."""
    srv = ServerProcess(tmp_path_factory.mktemp("brazier") / "data", prewarm="none")
    srv.start(timeout=240)
    yield srv
    srv.stop(timeout=60)
