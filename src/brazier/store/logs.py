"""Function logs: log groups, streams and events, kept for the CloudWatch Logs API to come.

Writes are batched: invocations append to an in-memory buffer (never blocking the invoke path)
and a background task hands the buffer every ``flush_interval`` seconds to the log writer, a child
process that commits it in one transaction (``log_writer``: a writer thread would fight the event
loop for the GIL on every row). If the writer dies, batches are written in-process (in a thread)
until a new writer has started. A separate SQLite file keeps log traffic from contending with the
metadata store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from brazier.model.logs import (
    DEFAULT_RETENTION_DAYS,
    RETENTION_SWEEP_INTERVAL_S,
    LogGroupKey,
)
from brazier.store import log_writer

log = logging.getLogger(__name__)

# (account, region, group, stream, timestamp, ingested, message)
Row = tuple[str, str, str, str, int, int, str]
Batch = list[Row]

SCHEMA_VERSION = 2  # 1: events keyed by group name only; 2: by (account, region, group)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_events (
    seq        INTEGER PRIMARY KEY,
    account    TEXT NOT NULL,
    region     TEXT NOT NULL,
    log_group  TEXT NOT NULL,
    log_stream TEXT NOT NULL,
    timestamp  INTEGER NOT NULL,
    ingested   INTEGER NOT NULL,
    message    TEXT NOT NULL
);
"""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS log_events_owned_group"
    " ON log_events(account, region, log_group, seq)",
    "CREATE INDEX IF NOT EXISTS log_events_owned_stream"
    " ON log_events(account, region, log_group, log_stream, seq)",
)

# Who owned a group name before groups had owners: (account, region) of every function (any
# version) whose log group has that name. Used once, by the migration from schema 1.
GroupOwners = Callable[[], Iterable[tuple[str, str, str]]]


def metadata_group_owners(metadata: sqlite3.Connection) -> GroupOwners:
    """``owners`` for ``LogStore``: the (account, region, group) of every function version in
    the metadata store (``store.sqlite``'s tables)."""

    def owners() -> list[tuple[str, str, str]]:
        rows = metadata.execute(
            "SELECT DISTINCT f.account, f.region,"
            " COALESCE(json_extract(v.config, '$.logging.log_group'), '/aws/lambda/' || f.name)"
            " FROM versions v JOIN functions f ON f.id = v.function_id"
        ).fetchall()
        return [(str(a), str(r), str(g)) for a, r, g in rows]

    return owners


WRITER_RETRY_S = 5.0  # after the writer failed to start, write in-process this long
WRITER_ACK_TIMEOUT_S = 30.0  # a writer that has not committed a batch by then is replaced
MAX_BUFFER = 50_000  # events held before new ones are dropped (and counted)
# Bytes of messages held (all functions together) before new events are dropped (and counted):
# a batch is held about three times while it is committed (the strings, their marshalled frame,
# the pipe's buffer), so this bounds the server's memory for logs to ~25 MiB however many
# functions flood at once; it is handed over early, at a quarter full.
MAX_BUFFER_BYTES = 8 * 1024 * 1024
# A page of events read (GetLogEvents' limits): 10,000 events and 1 MB of messages at most.
MAX_PAGE_EVENTS = 10_000
MAX_PAGE_BYTES = 1024 * 1024
_SWEEP_CHUNK = 5000  # events deleted per retention transaction


@dataclass(frozen=True, slots=True)
class LogEvent:
    log_stream: str
    timestamp: int
    message: str
    seq: int


class LogStore:
    """Implements ``brazier.model.invocation.LogSink`` over SQLite."""

    def __init__(
        self,
        path: Path,
        *,
        flush_interval: float = 0.2,
        owners: GroupOwners | None = None,
        retention_days: float | None = DEFAULT_RETENTION_DAYS,
        sweep_interval: float = RETENTION_SWEEP_INTERVAL_S,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``owners``: for a logs.db of schema 1, who owns which group name (see ``_migrate``).
        ``retention_days``: events older than this are deleted at start and every
        ``sweep_interval`` seconds while ``running`` (None: kept forever)."""
        self._path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._migrate(owners or (lambda: ()))
        self._buffer: Batch = []
        self._buffer_bytes = 0
        self._wake = asyncio.Event()  # set by a filling buffer and at stop: flush now
        self._retention_days = retention_days
        self._sweep_interval = sweep_interval
        self._wall_clock = wall_clock
        self._flush_interval = flush_interval
        self._lock = threading.Lock()
        self._inflight: asyncio.Future[int] | None = None
        self._writer: _WriterProcess | None = None
        self._writer_retry_at = 0.0
        self.dropped = 0  # events dropped because the buffer was full
        self._dropped_reported = 0

    def _migrate(self, owners: GroupOwners) -> None:
        """Bring the file to ``SCHEMA_VERSION``, in one transaction.

        Schema 1 keyed events by group name only. Its events go to the one (account, region)
        whose functions use that group name; a name used in several accounts or regions, or by
        no function any more, cannot be attributed: its events get no owner (account and region
        ``""``), so nobody reads them, and retention removes them in time.
        """
        db = self._db
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version >= SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            cols = {r[1] for r in db.execute("PRAGMA table_info(log_events)")}
            if not cols:
                db.execute(_SCHEMA)
            elif "account" not in cols:
                db.execute("ALTER TABLE log_events ADD COLUMN account TEXT NOT NULL DEFAULT ''")
                db.execute("ALTER TABLE log_events ADD COLUMN region TEXT NOT NULL DEFAULT ''")
                by_name: dict[str, set[tuple[str, str]]] = {}
                for account, region, group in owners():
                    by_name.setdefault(group, set()).add((account, region))
                db.execute(
                    "CREATE TEMP TABLE group_owner"
                    " (log_group TEXT PRIMARY KEY, account TEXT NOT NULL, region TEXT NOT NULL)"
                )
                for group, where in by_name.items():
                    if len(where) == 1:
                        ((account, region),) = where
                        db.execute(
                            "INSERT INTO group_owner VALUES (?, ?, ?)", (group, account, region)
                        )
                    else:
                        log.warning(
                            "log group %s is used in %d accounts/regions: its old events are"
                            " kept unowned",
                            group,
                            len(where),
                        )
                db.execute(  # one pass over the table
                    "UPDATE log_events SET account = o.account, region = o.region"
                    " FROM group_owner AS o WHERE o.log_group = log_events.log_group"
                )
                db.execute("DROP TABLE group_owner")
                db.execute("DROP INDEX IF EXISTS log_events_group")
                db.execute("DROP INDEX IF EXISTS log_events_stream")
            for index in _INDEXES:
                db.execute(index)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def append(
        self,
        group: LogGroupKey,
        stream: str,
        events: list[tuple[int, str]],
        *,
        platform: bool = False,
    ) -> bool:
        """Buffer ``events``; dropped (False) when the buffer is full, unless ``platform``
        (START, END, REPORT, drop reports: a handful per invocation, always kept)."""
        size = sum(len(msg) for _, msg in events)
        count = len(self._buffer)
        if not platform and (count >= MAX_BUFFER or self._buffer_bytes + size > MAX_BUFFER_BYTES):
            self.dropped += len(events)
            return False
        self._buffer_bytes += size
        account, region, name = group.account, group.region, group.name
        self._buffer.extend((account, region, name, stream, ts, ts, msg) for ts, msg in events)
        if count >= MAX_BUFFER // 4 or self._buffer_bytes >= MAX_BUFFER_BYTES // 4:
            self._wake.set()  # a flood: hand it to the writer now, not at the next interval
        return True

    def _take(self) -> Batch:
        """Swap the buffer out (on the event loop thread, where appends happen)."""
        batch, self._buffer = self._buffer, []
        self._buffer_bytes = 0
        if self.dropped != self._dropped_reported:
            log.warning("log buffer full: %d events dropped", self.dropped - self._dropped_reported)
            self._dropped_reported = self.dropped
        return batch

    def _write(self, batch: Batch) -> int:
        if not batch:
            return 0
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(log_writer.INSERT, batch)
            self._db.execute("COMMIT")
        return len(batch)

    def flush(self) -> int:
        """Commit what is buffered, now (blocking). Returns the number of events written."""
        return self._write(self._take())

    @asynccontextmanager
    async def running(self) -> AsyncIterator[LogStore]:
        """Hand batches to the writer process while open; commit the rest and close on exit."""
        stop = asyncio.Event()

        async def flush_forever() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._flush_interval)
                self._wake.clear()
                await self._commit_buffer()

        async def sweep_forever() -> None:
            while not stop.is_set():
                try:
                    await asyncio.to_thread(self.sweep_retention)
                except sqlite3.Error:
                    log.exception("removing log events past their retention failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._sweep_interval)

        # Started now, not at the first commit: starting it forks and execs, and the event loop
        # waits (~3 ms) until the exec, which would land on the first invocation's latency.
        await self._live_writer()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(flush_forever())
                if self._retention_days is not None:
                    tg.create_task(sweep_forever())
                try:
                    yield self
                finally:
                    stop.set()
                    self._wake.set()
            await self._commit_buffer()
        finally:
            if self._writer is not None:
                await self._writer.close()
                self._writer = None
            self.flush()
            self._db.close()

    async def _commit_buffer(self) -> None:
        """Commit what is buffered now; readers wait for it (``query``), so they miss nothing."""
        batch = self._take()
        if batch:
            self._inflight = asyncio.ensure_future(self._commit(batch))
            try:
                await self._inflight
            except sqlite3.Error:
                log.exception("writing log events failed")

    async def _commit(self, batch: Batch) -> int:
        writer = await self._live_writer()
        if writer is not None:
            try:
                async with asyncio.timeout(WRITER_ACK_TIMEOUT_S):
                    return await writer.send(batch)
            except WriterGone:
                log.warning("the log writer exited; writing this batch in-process")
            except TimeoutError:
                log.warning("the log writer stopped answering; replacing it")
                await writer.close(kill=True)
            # Not acknowledged, so not committed: written here instead. (A writer that died
            # between its commit and its acknowledgement would leave this batch twice.)
        return await asyncio.to_thread(self._write, batch)

    async def _live_writer(self) -> _WriterProcess | None:
        if self._writer is not None and self._writer.alive:
            return self._writer
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        now = time.monotonic()
        if now < self._writer_retry_at:
            return None
        try:
            self._writer = await _WriterProcess.start(self._path)
        except OSError:
            self._writer_retry_at = now + WRITER_RETRY_S
            log.exception("cannot start the log writer; writing logs in-process for now")
        return self._writer

    def sweep_retention(self) -> int:
        """Delete the events ingested more than ``retention_days`` ago; returns how many.

        One pass over the table in ``seq`` order, deleting in short transactions on a connection
        of its own (readers and the writer process wait at most one chunk's delete).
        """
        if self._retention_days is None:
            return 0
        cutoff = int((self._wall_clock() - self._retention_days * 86400) * 1000)
        removed = 0
        after = 0
        db = sqlite3.connect(self._path, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=10000")
            while True:
                seqs = [
                    seq
                    for (seq,) in db.execute(
                        "SELECT seq FROM log_events WHERE seq > ? AND ingested < ?"
                        " ORDER BY seq LIMIT ?",
                        (after, cutoff, _SWEEP_CHUNK),
                    )
                ]
                if not seqs:
                    break
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "DELETE FROM log_events WHERE seq >= ? AND seq <= ? AND ingested < ?",
                    (seqs[0], seqs[-1], cutoff),
                )
                db.execute("COMMIT")
                removed += len(seqs)
                after = seqs[-1]
        finally:
            db.close()
        if removed:
            log.info("removed %d log events older than %s days", removed, self._retention_days)
        return removed

    async def query(
        self,
        group: LogGroupKey,
        *,
        stream: str | None = None,
        start_time: int | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[LogEvent]:
        """Events of a group (optionally one stream) in order; includes unflushed ones.

        A page holds at most ``limit`` (at most ``MAX_PAGE_EVENTS``) events and
        ``MAX_PAGE_BYTES`` of messages, as CloudWatch Logs' GetLogEvents: the next page starts
        after the last ``seq`` returned."""
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            with contextlib.suppress(sqlite3.Error):
                await asyncio.shield(inflight)
        await self._commit_buffer()
        where = "account = ? AND region = ? AND log_group = ? AND seq > ?"
        args: list[object] = [group.account, group.region, group.name, after_seq]
        if stream is not None:
            where += " AND log_stream = ?"
            args.append(stream)
        if start_time is not None:
            where += " AND timestamp >= ?"
            args.append(start_time)
        args.append(max(0, min(limit, MAX_PAGE_EVENTS)))
        events: list[LogEvent] = []
        size = 0
        with self._lock:
            rows = self._db.execute(
                # ``where`` is assembled from fixed fragments only; every value is a parameter.
                "SELECT log_stream, timestamp, message, seq FROM log_events"  # noqa: S608
                f" WHERE {where} ORDER BY seq LIMIT ?",
                args,
            )
            for row in rows:  # at most MAX_PAGE_BYTES of messages (and at least one event)
                size += len(row[2])
                if events and size > MAX_PAGE_BYTES:
                    break
                events.append(LogEvent(*row))
        return events


class WriterGone(Exception):
    """The log writer process exited before acknowledging a batch."""


class _WriterProcess:
    """The parent's end of ``log_writer``: frames out on its stdin, acknowledgements back."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._seq = 0
        self._pending: dict[int, tuple[asyncio.Future[int], int]] = {}
        self.alive = True
        self._reader = asyncio.create_task(self._read_acks())

    @classmethod
    async def start(cls, path: Path) -> _WriterProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "brazier.store.log_writer", str(path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C is for the server, not for it
        )  # fmt: skip
        return cls(proc)

    def send(self, batch: Batch) -> asyncio.Future[int]:
        """Queue ``batch``; the future resolves to its size once committed."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if not self.alive or self._proc.stdin is None:
            fut.set_exception(WriterGone())
            return fut
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        self._pending[self._seq] = (fut, len(batch))
        payload = marshal.dumps(batch)  # header and payload apart: no joined copy of a flood
        self._proc.stdin.write(log_writer.HEADER.pack(self._seq, len(payload)))
        self._proc.stdin.write(payload)
        return fut

    async def _read_acks(self) -> None:
        assert self._proc.stdout is not None
        try:
            while True:
                raw = await self._proc.stdout.readexactly(log_writer.ACK.size)
                (seq,) = log_writer.ACK.unpack(raw)
                fut, size = self._pending.pop(seq, (None, 0))
                if fut is not None and not fut.done():
                    fut.set_result(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.alive = False
            for fut, _ in self._pending.values():
                if not fut.done():
                    fut.set_exception(WriterGone())
            self._pending.clear()

    async def close(self, *, kill: bool = False) -> None:
        """EOF to the writer: it commits what it has and exits (killed if it has not within
        ``WRITER_ACK_TIMEOUT_S``, or at once with ``kill``)."""
        self.alive = False
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            if kill:
                self._proc.kill()
            try:
                await asyncio.wait_for(self._proc.wait(), WRITER_ACK_TIMEOUT_S)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        await self._reader
