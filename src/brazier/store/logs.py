"""Function logs: log groups, streams and events, kept for the CloudWatch Logs API to come.

Writes are batched: invocations append to an in-memory buffer (never blocking the invoke path)
and a background task commits the buffer every ``flush_interval`` seconds in one transaction.
A separate SQLite file keeps log traffic from contending with the metadata store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_events (
    seq        INTEGER PRIMARY KEY,
    log_group  TEXT NOT NULL,
    log_stream TEXT NOT NULL,
    timestamp  INTEGER NOT NULL,
    ingested   INTEGER NOT NULL,
    message    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_events_group ON log_events(log_group, timestamp, seq);
CREATE INDEX IF NOT EXISTS log_events_stream ON log_events(log_group, log_stream, seq);
"""

MAX_BUFFER = 200_000  # events held before new ones are dropped (and counted)


@dataclass(frozen=True, slots=True)
class LogEvent:
    log_group: str
    log_stream: str
    timestamp: int
    message: str
    seq: int


class LogStore:
    """Implements ``brazier.model.invocation.LogSink`` over SQLite."""

    def __init__(self, path: Path, *, flush_interval: float = 0.2) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._buffer: list[tuple[str, str, int, int, str]] = []
        self._flush_interval = flush_interval
        self._lock = threading.Lock()
        self._inflight: asyncio.Future[int] | None = None
        self.dropped = 0

    def append(self, group: str, stream: str, events: list[tuple[int, str]]) -> None:
        if len(self._buffer) >= MAX_BUFFER:
            self.dropped += len(events)
            return
        self._buffer.extend((group, stream, ts, ts, msg) for ts, msg in events)

    def _take(self) -> list[tuple[str, str, int, int, str]]:
        """Swap the buffer out (on the event loop thread, where appends happen)."""
        batch, self._buffer = self._buffer, []
        return batch

    def _write(self, batch: list[tuple[str, str, int, int, str]]) -> int:
        if not batch:
            return 0
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO log_events(log_group, log_stream, timestamp, ingested, message)"
                " VALUES (?,?,?,?,?)",
                batch,
            )
            self._db.execute("COMMIT")
        return len(batch)

    def flush(self) -> int:
        """Commit what is buffered, now (blocking). Returns the number of events written."""
        return self._write(self._take())

    @asynccontextmanager
    async def running(self) -> AsyncIterator[LogStore]:
        """Flush in the background while open; flush the rest and close on exit."""
        stop = asyncio.Event()

        async def flush_forever() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._flush_interval)
                batch = self._take()
                if not batch:
                    continue
                # Written in a thread, so a large batch never stalls the event loop; readers
                # wait for it (``query``), so no event is ever missing from what they see.
                self._inflight = asyncio.ensure_future(asyncio.to_thread(self._write, batch))
                try:
                    await self._inflight
                except sqlite3.Error:
                    log.exception("writing log events failed")

        async with asyncio.TaskGroup() as tg:
            tg.create_task(flush_forever())
            try:
                yield self
            finally:
                stop.set()
        self.flush()
        self._db.close()

    async def query(
        self,
        group: str,
        *,
        stream: str | None = None,
        start_time: int | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[LogEvent]:
        """Events of a group (optionally one stream) in order; includes unflushed ones."""
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            with contextlib.suppress(sqlite3.Error):
                await asyncio.shield(inflight)
        self.flush()
        where = "log_group = ? AND seq > ?"
        args: list[object] = [group, after_seq]
        if stream is not None:
            where += " AND log_stream = ?"
            args.append(stream)
        if start_time is not None:
            where += " AND timestamp >= ?"
            args.append(start_time)
        args.append(limit)
        with self._lock:
            rows = self._db.execute(
                # ``where`` is assembled from fixed fragments only; every value is a parameter.
                "SELECT log_group, log_stream, timestamp, message, seq FROM log_events"  # noqa: S608
                f" WHERE {where} ORDER BY seq LIMIT ?",
                args,
            ).fetchall()
        return [LogEvent(*r) for r in rows]
