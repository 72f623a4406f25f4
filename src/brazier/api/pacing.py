"""Pacing: how much new-request work one event loop iteration may start.

An event loop iteration runs every callback that was ready when it began, then polls for I/O. A
burst of 2,000 requests arriving together makes 2,000 tasks ready at once: their first steps
(parse, authenticate, admit, start a sandbox or answer 429) all run in one iteration, and
nothing else (``/health``, a runtime's ``/next``, a finished invocation's answer) is read until
it ends: 0.4-0.6 s on an idle 2-core host, seconds on a loaded one (issue 11, item 6).

``Pacer.turn`` is awaited by each request before its work. Requests are admitted at once while
the current iteration has spent less than ``budget`` seconds on admitted requests; past it, they
wait in arrival order, and each later iteration releases a batch sized so that the batch's work
fits the budget (measured, halved when over, doubled when well under). Between two batches the
loop polls I/O, so no other connection waits more than about one budget plus one request.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

TICK_BUDGET = 0.010  # seconds of new-request work per loop iteration (issue 11: /health < 100 ms)
_MAX_BATCH = 4096
_MIN_BATCH = 4  # released per iteration at least: a loaded host's clock still moves on


class Pacer:
    """Admits request starts so that one loop iteration spends about ``budget`` on them."""

    def __init__(
        self, budget: float = TICK_BUDGET, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._budget = budget
        self._clock = clock
        self._tick_start: float | None = None  # None: no iteration has admitted anything yet
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._batch = 8
        self.delayed = 0  # requests that waited for a later iteration (for figures and tests)

    async def turn(self) -> None:
        """Return when this request may start its work (at once unless the loop is busy)."""
        if not self._waiters and self._admit_now():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self.delayed += 1
        await fut  # cancelled: the future is done, and _release skips it

    def _admit_now(self) -> bool:
        now = self._clock()
        if self._tick_start is None:
            self._tick_start = now
            asyncio.get_running_loop().call_soon(self._end_tick)
        return now - self._tick_start < self._budget

    def _end_tick(self) -> None:
        """Runs in the next iteration, after its I/O poll: release the next batch of waiters."""
        assert self._tick_start is not None
        spent = self._clock() - self._tick_start
        if spent > self._budget:
            self._batch = max(_MIN_BATCH, self._batch // 2)
        elif spent < self._budget / 2:
            self._batch = min(_MAX_BATCH, self._batch * 2)
        self._tick_start = None
        released = 0
        while self._waiters and released < self._batch:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                released += 1
        if self._waiters or released:
            # The released steps run in the next iteration; this measures them.
            self._tick_start = self._clock()
            asyncio.get_running_loop().call_soon(self._end_tick)
