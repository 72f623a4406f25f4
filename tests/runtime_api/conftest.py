"""Run every runtime_api test on both the stdlib event loop and uvloop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .helpers import LOOP


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    LOOP["kind"] = request.param
    yield request.param
    LOOP["kind"] = "asyncio"
