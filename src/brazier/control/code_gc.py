"""Collecting code nobody refers to any more: blobs, their extracted trees and shared files.

A blob is kept while any function version or layer version refers to it (a deleted layer
version too, while a function still pins its ARN, as Lambda keeps such layers usable), while an
operation that stored it has not committed its metadata yet (a *pin*), and its tree while an
execution environment runs from it.

Crash safety: pins and collections exclude each other through one lock, so a collection never
sees a blob stored but not yet referenced; a crash between the two leaves an unreferenced blob,
which the next collection removes. Removal itself is a rename then a delete (see ``BlobStore``).

A collection runs ``SETTLE_SECONDS`` after code is released (a function or version deleted, code
replaced, a layer version deleted) and every ``PERIOD_SECONDS`` in any case.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from brazier.store.blobs import BlobStore, GcResult

log = logging.getLogger(__name__)

SETTLE_SECONDS = 0.5
PERIOD_SECONDS = 300.0


class CodePins:
    """Digests being stored whose metadata has not committed yet, and the signal that code was
    released. Shared by the services that store code and the collector."""

    def __init__(self) -> None:
        self._pinned: collections.Counter[str] = collections.Counter()
        self.lock = asyncio.Lock()  # held by a collection from its snapshot to its last removal
        self._released = asyncio.Event()

    @asynccontextmanager
    async def pin(self, digest: str) -> AsyncIterator[None]:
        """Keep ``digest`` for the duration of the block: put the blob and commit inside it."""
        async with self.lock:  # never while a collection decides what to keep
            self._pinned[digest] += 1
        try:
            yield
        finally:
            self._pinned[digest] -= 1
            if self._pinned[digest] <= 0:
                del self._pinned[digest]
                self.released()  # the operation may have failed: its blob is garbage now

    def pinned(self) -> frozenset[str]:
        return frozenset(self._pinned)

    def released(self) -> None:
        """Code may have become unreferenced: collect soon."""
        self._released.set()

    async def wait_released(self, period: float) -> bool:
        """Wait until code is released (True) or ``period`` seconds pass (False)."""
        try:
            async with asyncio.timeout(period):
                await self._released.wait()
        except TimeoutError:
            return False
        self._released.clear()
        return True


class CodeCollector:
    """Removes blobs, trees and shared files that nothing refers to.

    ``referenced`` returns the digests the metadata refers to; ``paths_in_use`` the directories
    execution environments run from (code and /opt), whatever the metadata says now.
    """

    def __init__(
        self,
        blobs: BlobStore,
        pins: CodePins,
        referenced: Iterable[Callable[[], Awaitable[set[str]]]],
        paths_in_use: Callable[[], set[Path]],
        *,
        settle: float = SETTLE_SECONDS,
        period: float = PERIOD_SECONDS,
    ) -> None:
        self._blobs = blobs
        self._pins = pins
        self._referenced = tuple(referenced)
        self._paths_in_use = paths_in_use
        self._settle = settle
        self._period = period
        self.last: GcResult | None = None

    async def collect(self) -> GcResult:
        """One collection. Safe at any time: pinned and referenced code survives."""
        async with self._pins.lock:
            keep = set(self._pins.pinned())
            for source in self._referenced:
                keep |= await source()
            trees_dir = self._blobs.tree_path("0" * 64).parent
            running = {p.name for p in self._paths_in_use() if p.parent == trees_dir}
            result = await asyncio.to_thread(self._blobs.gc, keep, keep_trees=running)
        if result.removed:
            log.info(
                "code collected: %d blobs, %d trees, %d files (%d bytes)",
                result.blobs,
                result.trees,
                result.files,
                result.bytes_freed,
            )
        self.last = result
        return result

    async def _loop(self) -> None:
        while True:
            if await self._pins.wait_released(self._period):
                await asyncio.sleep(self._settle)  # let a burst of deletes settle
            try:
                await self.collect()
            except Exception:  # a failed sweep must not stop the next one
                log.exception("collecting unused code failed")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CodeCollector]:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(self._loop())
            try:
                yield self
            finally:
                task.cancel()
