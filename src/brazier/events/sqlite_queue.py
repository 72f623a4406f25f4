"""The single-node queue: its own SQLite file (WAL), enqueues group-committed with fsync.

Every statement runs on one thread that owns the connection, so the event loop never waits on a
disk sync. Enqueues are batched: while one batch is being written and synced, the enqueues that
arrive wait for the next one, so N concurrent Event invokes cost one fsync, not N. An enqueue
returns (and its 202 is sent) only after its batch committed with ``synchronous=FULL``. Leases,
acknowledgements and requeues commit with ``synchronous=NORMAL``: a ``kill -9`` keeps them
(WAL), a power cut may undo the last ones, which at-least-once delivery allows (a lost ack runs
the event again; a lost lease is recovered at start).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from brazier.events.lifecycle import EventState, move
from brazier.events.queue import Depth, Kind, QueuedEvent, UnknownEvent

T = TypeVar("T")

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    account        TEXT NOT NULL,
    region         TEXT NOT NULL,
    function       TEXT NOT NULL,
    qualifier      TEXT,
    payload        BLOB NOT NULL,
    request_id     TEXT NOT NULL,
    enqueued_at    REAL NOT NULL,
    not_before     REAL NOT NULL,
    attempts       INTEGER NOT NULL,
    requeues       INTEGER NOT NULL,
    client_context TEXT,
    tenant_id      TEXT,
    destination    TEXT,
    last_result    BLOB,
    last_error     TEXT,
    state          TEXT NOT NULL,
    lease_until    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_due ON events(state, not_before);
"""

_COLUMNS = (
    "id, kind, account, region, function, qualifier, payload, request_id, enqueued_at,"
    " not_before, attempts, requeues, client_context, tenant_id, destination, last_result,"
    " last_error, state, lease_until"
)
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join('?' * 19)})"  # noqa: S608


def _row(e: QueuedEvent) -> tuple[Any, ...]:
    return (
        e.id, e.kind.value, e.account, e.region, e.function, e.qualifier, e.payload,
        e.request_id, e.enqueued_at, e.not_before, e.attempts, e.requeues, e.client_context,
        e.tenant_id, e.destination, e.last_result, e.last_error, e.state.value, e.lease_until,
    )  # fmt: skip


def _event(r: tuple[Any, ...]) -> QueuedEvent:
    return QueuedEvent(
        id=r[0], kind=Kind(r[1]), account=r[2], region=r[3], function=r[4], qualifier=r[5],
        payload=bytes(r[6]), request_id=r[7], enqueued_at=r[8], not_before=r[9], attempts=r[10],
        requeues=r[11], client_context=r[12], tenant_id=r[13], destination=r[14],
        last_result=None if r[15] is None else bytes(r[15]), last_error=r[16],
        state=EventState(r[17]), lease_until=r[18],
    )  # fmt: skip


class QueueClosed(RuntimeError):
    """The queue stopped before the event was stored."""


class SqliteQueue:
    """``AsyncQueue`` over ``<data-dir>/events.db``."""

    def __init__(self, path: Path) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="events-db")
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{path} is from a newer brazier (schema {version})")
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._pending: list[tuple[QueuedEvent, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._open = False
        self.batches = 0  # commits of enqueue batches (for measurements)

    # -- plumbing ----------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _tx(self, fn: Callable[[sqlite3.Connection], T], *, sync: bool = False) -> T:
        db = self._db
        db.execute("PRAGMA synchronous=FULL" if sync else "PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return out

    @asynccontextmanager
    async def running(self) -> AsyncIterator[SqliteQueue]:
        self._open = True
        try:
            async with asyncio.TaskGroup() as tg:
                writer = tg.create_task(self._writer())
                try:
                    yield self
                finally:
                    self._open = False
                    writer.cancel()
        finally:
            for _, fut in self._pending:
                if not fut.done():
                    fut.set_exception(QueueClosed("the event queue is closed"))
            self._pending.clear()
            await self._run(self._db.close)
            self._thread.shutdown(wait=True)

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                await self._run(self._insert, [e for e, _ in batch])
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                self.batches += 1
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)

    def _insert(self, events: list[QueuedEvent]) -> None:
        self._tx(lambda db: db.executemany(_INSERT, [_row(e) for e in events]), sync=True)

    # -- AsyncQueue --------------------------------------------------------------------------

    async def enqueue(self, event: QueuedEvent) -> None:
        if not self._open:
            raise QueueClosed("the event queue is not running")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event, fut))
        self._wake.set()
        await fut

    async def lease(self, now: float, until: float, limit: int) -> list[QueuedEvent]:
        def tx(db: sqlite3.Connection) -> list[QueuedEvent]:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE (state = 'ready' AND not_before <= ?)"  # noqa: S608
                " OR (state = 'leased' AND lease_until <= ?) ORDER BY not_before LIMIT ?",
                (now, now, limit),
            ).fetchall()
            out = []
            for r in rows:
                e = _event(r)
                if e.state is EventState.READY:
                    move(e.state, EventState.LEASED)
                db.execute(
                    "UPDATE events SET state = 'leased', lease_until = ? WHERE id = ?",
                    (until, e.id),
                )
                out.append(replace(e, state=EventState.LEASED, lease_until=until))
            return out

        if limit <= 0:
            return []
        return await self._run(self._tx, tx)

    @staticmethod
    def _state(db: sqlite3.Connection, event_id: str) -> EventState:
        row = db.execute("SELECT state FROM events WHERE id = ?", (event_id,)).fetchone()
        if row is None:
            raise UnknownEvent(event_id)
        return EventState(row[0])

    async def ack(self, event_id: str, *, then: Sequence[QueuedEvent] = ()) -> None:
        def tx(db: sqlite3.Connection) -> None:
            move(self._state(db, event_id), EventState.DONE)
            db.execute("DELETE FROM events WHERE id = ?", (event_id,))
            for follow in then:
                db.execute(_INSERT, _row(replace(follow, state=EventState.READY)))

        await self._run(lambda: self._tx(tx, sync=bool(then)))

    async def retry_later(self, event: QueuedEvent) -> None:
        def tx(db: sqlite3.Connection) -> None:
            move(self._state(db, event.id), EventState.READY)
            db.execute(
                "UPDATE events SET state = 'ready', lease_until = 0, not_before = ?,"
                " attempts = ?, requeues = ?, last_result = ?, last_error = ? WHERE id = ?",
                (event.not_before, event.attempts, event.requeues, event.last_result,
                 event.last_error, event.id),
            )  # fmt: skip

        await self._run(self._tx, tx)

    async def dead_letter(self, event_id: str, reason: str) -> None:
        def tx(db: sqlite3.Connection) -> None:
            move(self._state(db, event_id), EventState.DEAD)
            db.execute(
                "UPDATE events SET state = 'dead', lease_until = 0, last_error = ? WHERE id = ?",
                (reason, event_id),
            )

        await self._run(self._tx, tx)

    async def get(self, event_id: str) -> QueuedEvent | None:
        def read() -> QueuedEvent | None:
            r = self._db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE id = ?",  # noqa: S608
                (event_id,),
            ).fetchone()
            return None if r is None else _event(r)

        return await self._run(read)

    async def next_due(self) -> float | None:
        def read() -> float | None:
            r = self._db.execute(
                "SELECT min(not_before) FROM events WHERE state = 'ready'"
            ).fetchone()
            return None if r is None else r[0]

        return await self._run(read)

    async def depths(self, now: float) -> list[Depth]:
        def read() -> list[Depth]:
            rows = self._db.execute(
                "SELECT account, region, function,"
                " sum(state = 'ready'), sum(state = 'leased'), sum(state = 'dead'),"
                " min(CASE WHEN state != 'dead' THEN enqueued_at END)"
                " FROM events GROUP BY account, region, function ORDER BY 1, 2, 3"
            ).fetchall()
            return [
                Depth(a, r, f, ready, leased, dead, 0.0 if oldest is None else now - oldest)
                for a, r, f, ready, leased, dead, oldest in rows
            ]

        return await self._run(read)

    async def recover(self) -> int:
        def tx(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "UPDATE events SET state = 'ready', lease_until = 0 WHERE state = 'leased'"
            )
            return cur.rowcount

        return await self._run(self._tx, tx)
