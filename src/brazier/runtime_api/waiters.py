"""``Waiters``: callers parked until a one-shot outcome is known.

Each caller awaits its own future, so cancelling one waiter (``asyncio.timeout`` around
``wait_init``) never cancels another, and no future is created unless someone waits: an
outcome nobody awaits costs nothing and can never log "exception was never retrieved".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Waiters"]

T = TypeVar("T")


class Waiters(Generic[T]):
    """A list of per-caller futures; not thread-safe (one loop)."""

    __slots__ = ("_futures",)

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[T]] = []

    async def wait(self) -> T:
        """Park the caller until :meth:`wake` or :meth:`fail`. Cancellable."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._futures.append(fut)
        try:
            return await fut
        finally:
            if fut in self._futures:
                self._futures.remove(fut)

    def wake(self, value: T) -> None:
        """Resolve every parked caller with ``value``. No-op without waiters."""
        futures, self._futures = self._futures, []
        for fut in futures:
            if not fut.done():
                fut.set_result(value)

    def fail(self, error: Callable[[], BaseException]) -> None:
        """Raise ``error()`` (a fresh exception each) in every parked caller."""
        futures, self._futures = self._futures, []
        for fut in futures:
            if not fut.done():
                fut.set_exception(error())
