"""A clock tests move by hand: ``now()`` only changes when ``advance`` is called."""

from __future__ import annotations

import asyncio


class ManualClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        # Yield to the loop without waiting real time; the test advances the clock.
        await asyncio.sleep(0)
