"""Async tests here run on a fresh event loop each; a ``queue`` argument is opened around them."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    fn = pyfuncitem.obj
    if not inspect.iscoroutinefunction(fn):
        return None
    kwargs: dict[str, Any] = {a: pyfuncitem.funcargs[a] for a in pyfuncitem._fixtureinfo.argnames}

    async def main() -> None:
        queue = kwargs.get("queue")
        if queue is None:
            await fn(**kwargs)
            return
        async with queue.running():
            await fn(**kwargs)

    asyncio.run(main())
    return True
