"""The worker's background work (releases, freezes) cannot take the worker down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from brazier.worker.worker import LocalWorker


class _NoSandboxes:
    async def prewarm(self, runtimes: Any) -> list[str]:
        return []


@asynccontextmanager
async def _factory() -> AsyncIterator[Any]:
    yield _NoSandboxes()


class _Sink:
    def append(self, group: Any, stream: str, events: Any, *, platform: bool = False) -> bool:
        return True


def test_a_failing_background_task_is_logged_and_the_worker_keeps_running() -> None:
    async def go() -> tuple[bool, bool]:
        worker = LocalWorker(_factory, _Sink(), idle_ttl=60.0, init_timeout=1.0)
        async with worker.running():

            async def fails() -> None:
                raise FileNotFoundError("cgroup.freeze is gone")  # what EMFILE made of a freeze

            ran = asyncio.Event()

            async def works() -> None:
                ran.set()

            await worker._spawn(fails())
            await asyncio.sleep(0)
            await worker._spawn(works())
            return ran.is_set(), worker._tasks is not None

    assert asyncio.run(go()) == (True, True)
