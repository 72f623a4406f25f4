from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pytest

from support import Deploy, make_zip, wait_active

ROLE = "arn:aws:iam::000000000000:role/lambda-role"

pytestmark = pytest.mark.sandbox


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/invoke/" in str(item.fspath):
            item.add_marker(pytest.mark.sandbox)


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root (CI runs as root)")


@pytest.fixture
def deploy(client: Any, fname: str) -> Deploy:
    counter = iter(range(1000))

    def _deploy(
        files: Mapping[str, str | bytes],
        *,
        runtime: str = "python3.11",
        handler: str = "app.handler",
        modes: Mapping[str, int] | None = None,
        **kw: Any,
    ) -> str:
        name = f"{fname}-{next(counter)}"
        client.create_function(
            FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler,
            Code={"ZipFile": make_zip(files, modes=modes)}, **kw,
        )  # fmt: skip
        wait_active(client, name)
        return name

    return _deploy
