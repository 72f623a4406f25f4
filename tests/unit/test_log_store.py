"""The log store and its writer process: nothing appended is lost, in order, whatever the writer
does (real SQLite, a real child process)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from brazier.model.logs import LogGroupKey
from brazier.store import log_writer, logs
from brazier.store.logs import LogStore

GROUP = LogGroupKey("000000000000", "us-east-1", "/aws/lambda/f")
G = (GROUP.account, GROUP.region, GROUP.name)


def _events(start: int, n: int) -> list[tuple[int, str]]:
    return [(1_700_000_000_000 + i, f"line {i}\n") for i in range(start, start + n)]


def _messages(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [m for (m,) in db.execute("SELECT message FROM log_events ORDER BY seq")]


def test_writer_commits_frames_and_acknowledges_each(tmp_path: Path) -> None:
    LogStore(tmp_path / "logs.db")  # the schema
    batches = [
        [(*G, "s", 1, 1, "a\n"), (*G, "s", 2, 2, "b\n")],
        [],
        [(*G, "t", 3, 3, "c\n")],
    ]
    inp = io.BytesIO(b"".join(log_writer.encode(seq, b) for seq, b in enumerate(batches, 7)))
    out = io.BytesIO()
    with sqlite3.connect(tmp_path / "logs.db") as db:
        assert log_writer.serve(db, inp, out) == 3
    acks = [log_writer.ACK.unpack_from(out.getvalue(), i)[0] for i in range(0, 12, 4)]
    assert acks == [7, 8, 9]
    assert _messages(tmp_path / "logs.db") == ["a\n", "b\n", "c\n"]


def test_writer_refuses_a_truncated_frame_and_commits_none_of_it(tmp_path: Path) -> None:
    LogStore(tmp_path / "logs.db")
    frame = log_writer.encode(1, [(*G, "s", 1, 1, "a\n")])
    out = io.BytesIO()
    with sqlite3.connect(tmp_path / "logs.db") as db, pytest.raises(EOFError):
        log_writer.serve(db, io.BytesIO(frame[:-3]), out)
    assert out.getvalue() == b""
    assert _messages(tmp_path / "logs.db") == []


def _writer_pid(store: LogStore) -> int:
    writer = store._writer  # the process under test
    assert writer is not None
    assert writer.alive
    return writer._proc.pid


def test_events_reach_the_writer_process_and_survive_close(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"

    async def main() -> None:
        store = LogStore(path, flush_interval=0.01)
        async with store.running():
            store.append(GROUP, "s1", _events(0, 500))
            await asyncio.sleep(0.2)
            pid = _writer_pid(store)
            assert pid != os.getpid()
            store.append(GROUP, "s2", _events(500, 10))
            seen = await store.query(GROUP, limit=10_000)  # unflushed ones included
            assert [e.message for e in seen] == [m for _, m in _events(0, 510)]
            store.append(GROUP, "s1", _events(510, 7))  # appended just before close
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the writer is gone with the store

    asyncio.run(main())
    assert _messages(path) == [m for _, m in _events(0, 517)]


def _run_with_writer(path: Path, scenario: Callable[[LogStore, int], Awaitable[None]]) -> None:
    """Run ``scenario(store, writer_pid)`` once ten events are committed by the writer."""

    async def main() -> None:
        store = LogStore(path, flush_interval=0.01)
        async with store.running():
            store.append(GROUP, "s", _events(0, 10))
            await asyncio.sleep(0.2)
            await scenario(store, _writer_pid(store))

    asyncio.run(main())


def test_a_killed_writer_loses_nothing_and_is_replaced(tmp_path: Path) -> None:
    async def scenario(store: LogStore, first: int) -> None:
        os.kill(first, signal.SIGKILL)
        await asyncio.sleep(0.1)
        for i in range(5):  # batches while the writer is dead, then after its successor
            store.append(GROUP, "s", _events(10 + i * 10, 10))
            await asyncio.sleep(0.05)
        seen = await store.query(GROUP, stream="s", limit=10_000)
        assert [e.message for e in seen] == [m for _, m in _events(0, 60)]
        assert _writer_pid(store) != first

    _run_with_writer(tmp_path / "logs.db", scenario)
    assert _messages(tmp_path / "logs.db") == [m for _, m in _events(0, 60)]


def test_a_batch_in_flight_when_the_writer_dies_is_written_in_process(tmp_path: Path) -> None:
    async def scenario(store: LogStore, pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)  # it reads no more frames and acknowledges nothing
        store.append(GROUP, "s", _events(10, 10))
        await asyncio.sleep(0.1)  # that batch is sent and waits for its acknowledgement
        os.kill(pid, signal.SIGKILL)
        seen = await store.query(GROUP, limit=10_000)
        assert [e.message for e in seen] == [m for _, m in _events(0, 20)]

    _run_with_writer(tmp_path / "logs.db", scenario)
    assert _messages(tmp_path / "logs.db") == [m for _, m in _events(0, 20)]


def test_a_writer_that_stops_answering_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "WRITER_ACK_TIMEOUT_S", 0.3)

    async def scenario(store: LogStore, pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)  # alive, but never answers again
        store.append(GROUP, "s", _events(10, 10))
        seen = await store.query(GROUP, limit=10_000)
        assert [e.message for e in seen] == [m for _, m in _events(0, 20)]
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # killed, and reaped
        store.append(GROUP, "s", _events(20, 5))
        await asyncio.sleep(0.1)
        assert _writer_pid(store) != pid

    _run_with_writer(tmp_path / "logs.db", scenario)
    assert _messages(tmp_path / "logs.db") == [m for _, m in _events(0, 25)]


_SCHEMA_1 = """
CREATE TABLE log_events (
    seq INTEGER PRIMARY KEY, log_group TEXT NOT NULL, log_stream TEXT NOT NULL,
    timestamp INTEGER NOT NULL, ingested INTEGER NOT NULL, message TEXT NOT NULL
);
CREATE INDEX log_events_group ON log_events(log_group, timestamp, seq);
CREATE INDEX log_events_stream ON log_events(log_group, log_stream, seq);
"""


def test_events_of_a_schema_1_file_go_to_the_one_owner_of_their_group(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA_1)
        db.executemany(
            "INSERT INTO log_events(log_group, log_stream, timestamp, ingested, message)"
            " VALUES (?, 's', 1, 1, ?)",
            [("/aws/lambda/f", "mine\n"), ("/aws/lambda/both", "ambiguous\n"),
             ("/aws/lambda/gone", "orphan\n")],
        )  # fmt: skip
    owners = [
        ("000000000000", "us-east-1", "/aws/lambda/f"),
        ("000000000000", "us-east-1", "/aws/lambda/both"),
        ("999999999999", "us-east-1", "/aws/lambda/both"),
    ]

    async def main() -> dict[str, list[str]]:
        store = LogStore(path, owners=lambda: owners)
        async with store.running():
            out = {}
            for account, name in [
                ("000000000000", "/aws/lambda/f"),
                ("999999999999", "/aws/lambda/f"),
                ("000000000000", "/aws/lambda/both"),
                ("999999999999", "/aws/lambda/both"),
                ("000000000000", "/aws/lambda/gone"),
                ("", "/aws/lambda/gone"),
            ]:
                key = LogGroupKey(account, "us-east-1" if account else "", name)
                out[f"{account}{name}"] = [e.message for e in await store.query(key)]
            return out

    seen = asyncio.run(main())
    assert seen == {
        "000000000000/aws/lambda/f": ["mine\n"],
        "999999999999/aws/lambda/f": [],
        "000000000000/aws/lambda/both": [],
        "999999999999/aws/lambda/both": [],
        "000000000000/aws/lambda/gone": [],
        "/aws/lambda/gone": ["orphan\n"],  # unowned: no caller has account ""
    }
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (logs.SCHEMA_VERSION,)
        indexes = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert indexes == {"log_events_owned_group", "log_events_owned_stream"}
    LogStore(path, owners=lambda: pytest.fail("migrated once only"))  # type: ignore[no-any-return]


def test_one_group_name_in_two_accounts_and_regions_is_three_groups(tmp_path: Path) -> None:
    keys = [
        LogGroupKey("000000000000", "us-east-1", "/aws/lambda/f"),
        LogGroupKey("111111111111", "us-east-1", "/aws/lambda/f"),
        LogGroupKey("000000000000", "eu-west-1", "/aws/lambda/f"),
    ]

    async def main() -> list[list[str]]:
        store = LogStore(tmp_path / "logs.db", flush_interval=0.01)
        async with store.running():
            for i, key in enumerate(keys):
                store.append(key, "s", [(i, f"{i}\n")])
            return [[e.message for e in await store.query(key)] for key in keys]

    assert asyncio.run(main()) == [["0\n"], ["1\n"], ["2\n"]]


def test_events_past_their_retention_are_deleted_at_start_and_by_each_sweep(
    tmp_path: Path,
) -> None:
    day_ms = 86_400_000
    now = [1_800_000_000.0]  # the wall clock, in seconds
    t0 = int(now[0] * 1000)

    async def main() -> list[list[str]]:
        store = LogStore(
            tmp_path / "logs.db",
            flush_interval=0.01,
            retention_days=2,
            sweep_interval=0.05,
            wall_clock=lambda: now[0],
        )
        store.append(GROUP, "s", [(t0 - 3 * day_ms, "3 days old\n"), (t0 - day_ms, "1 day\n")])
        store.flush()
        seen = []
        async with store.running():
            await asyncio.sleep(0.02)
            seen.append([e.message for e in await store.query(GROUP)])
            store.append(GROUP, "s", [(t0, "now\n")])
            now[0] += 1.5 * 86400  # "1 day" is now 2.5 days old; "now" 1.5 days
            await asyncio.sleep(0.2)
            seen.append([e.message for e in await store.query(GROUP)])
        return seen

    assert asyncio.run(main()) == [["1 day\n"], ["now\n"]]
    with sqlite3.connect(tmp_path / "logs.db") as db:
        assert db.execute("SELECT count(*) FROM log_events").fetchone() == (1,)


def test_the_buffer_holds_at_most_max_buffer_bytes_and_counts_what_it_drops(
    tmp_path: Path,
) -> None:
    store = LogStore(tmp_path / "logs.db")
    mib = "m" * (1024 * 1024)
    for i in range(20):
        store.append(GROUP, "s", [(i, mib)])
    assert store.dropped == 20 - logs.MAX_BUFFER_BYTES // len(mib)
    store.append(GROUP, "s", [(50, "REPORT RequestId: 1\n")], platform=True)  # kept, even now
    assert store.flush() == logs.MAX_BUFFER_BYTES // len(mib) + 1
    store.append(GROUP, "s", [(99, mib)])  # room again once flushed
    assert store.flush() == 1
