"""Log floods: a function printing 100 MB keeps the server's memory and the stored events bounded
(per-function ingestion quota, lines cut at 256 KB, a drop report), and retention deletes old
events at start (a real server, real sandboxes, real SQLite)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from brazier.model.logs import (
    EVENT_OVERHEAD_BYTES,
    INGEST_BURST_BYTES,
    INGEST_RATE_BYTES_PER_S,
    MAX_LINE_BYTES,
)

from support import ServerProcess, lambda_client, make_zip, running_server, wait_active

ROLE = "arn:aws:iam::000000000000:role/lambda-role"
MiB = 1024 * 1024

FLOOD = """
import sys
def handler(event, context):
    row = ('x' * 1023 + '\\n') * 1024            # 1 MiB of 1 KiB lines
    for _ in range(event['lines_mib']):
        sys.stdout.write(row)
    sys.stdout.write('y' * event['long_line'] + '\\n')  # one line longer than 256 KB
    sys.stdout.flush()
    return 'done'
"""


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def reset_peak_rss(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("flood") / "data") as s:
        yield s


def _logs(url: str, function: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        after = events[-1]["seq"] if events else 0
        reply = httpx.get(
            f"{url}/_brazier/v1/functions/{function}/logs?after={after}&limit=10000", timeout=60
        )
        assert reply.status_code == 200, reply.text
        page = reply.json()["events"]
        if not page:
            return events
        events.extend(page)


def test_a_100_mb_flood_is_bounded_in_memory_and_in_stored_events(srv: ServerProcess) -> None:
    client = lambda_client(srv.url)
    client.create_function(
        FunctionName="flood", Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": FLOOD})}, Timeout=120, MemorySize=256,
    )  # fmt: skip
    wait_active(client, "flood")
    assert srv.proc is not None
    pid = srv.proc.pid
    warm = client.invoke(FunctionName="flood", Payload=b'{"lines_mib": 0, "long_line": 10}')
    assert warm["StatusCode"] == 200
    time.sleep(0.5)
    reset_peak_rss(pid)
    before_kib = rss_kib(pid, "VmRSS")
    started = time.monotonic()
    out = client.invoke(
        FunctionName="flood", Payload=b'{"lines_mib": 100, "long_line": 700000}', LogType="Tail"
    )
    elapsed = time.monotonic() - started
    assert out["Payload"].read() == b'"done"'
    grown_mib = (rss_kib(pid, "VmHWM") - before_kib) / 1024
    assert grown_mib < 50, f"server RSS grew by {grown_mib:.1f} MiB"

    events = _logs(srv.url, "flood")
    messages = [e["message"] for e in events]
    stored = sum(len(m.encode()) for m in messages if m.startswith("x"))
    allowed = INGEST_BURST_BYTES + INGEST_RATE_BYTES_PER_S * (elapsed + 1)
    assert 0 < stored <= allowed, (stored, elapsed)
    assert max(len(m.encode()) for m in messages) <= MAX_LINE_BYTES
    drops = [m for m in messages if m.startswith("LOGS_DROPPED ")]
    assert drops, "no drop report"
    dropped = sum(int(m.split("DroppedRecords: ")[1].split("\t")[0]) for m in drops)
    kept = sum(1 for m in messages if m.startswith(("x", "y")))
    # Every line is kept or counted as dropped: 100 Ki lines, the long one cut in three (and
    # the warm-up's one line).
    assert kept + dropped == 100 * 1024 + 3 + 1
    print(f"flood: {elapsed:.2f} s, RSS +{grown_mib:.1f} MiB, {stored / MiB:.1f} MiB stored")
    assert messages[-1].startswith("REPORT RequestId:")


EMPTY_LINES = """
import sys
def handler(event, context):
    row = '\\n' * 1048576
    for _ in range(event['mib']):
        sys.stdout.write(row)
    return 'done'
"""


def test_a_flood_of_empty_lines_is_bounded_too(srv: ServerProcess) -> None:
    client = lambda_client(srv.url)
    client.create_function(
        FunctionName="empty-lines", Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": EMPTY_LINES})}, Timeout=120, MemorySize=256,
    )  # fmt: skip
    wait_active(client, "empty-lines")
    assert srv.proc is not None
    pid = srv.proc.pid
    client.invoke(FunctionName="empty-lines", Payload=b'{"mib": 0}')
    time.sleep(0.5)
    reset_peak_rss(pid)
    before_kib = rss_kib(pid, "VmRSS")
    started = time.monotonic()
    out = client.invoke(FunctionName="empty-lines", Payload=b'{"mib": 50}')
    elapsed = time.monotonic() - started
    assert out["Payload"].read() == b'"done"'
    grown_mib = (rss_kib(pid, "VmHWM") - before_kib) / 1024
    assert grown_mib < 50, f"server RSS grew by {grown_mib:.1f} MiB"
    messages = [e["message"] for e in _logs(srv.url, "empty-lines")]
    empty = messages.count("\n")
    per_event = 1 + EVENT_OVERHEAD_BYTES
    assert 0 < empty <= (INGEST_BURST_BYTES + INGEST_RATE_BYTES_PER_S * (elapsed + 1)) / per_event
    assert any(m.startswith("LOGS_DROPPED ") for m in messages)
    assert messages[-1].startswith("REPORT RequestId:")  # platform lines are never dropped
    print(f"empty lines: {elapsed:.2f} s, RSS +{grown_mib:.1f} MiB, {empty} events stored")


def test_floods_of_four_functions_at_once_are_bounded_together(srv: ServerProcess) -> None:
    client = lambda_client(srv.url)
    names = [f"together-{i}" for i in range(4)]
    for name in names:
        client.create_function(
            FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": FLOOD})}, Timeout=120, MemorySize=256,
        )  # fmt: skip
        wait_active(client, name)
        client.invoke(FunctionName=name, Payload=b'{"lines_mib": 0, "long_line": 1}')
    assert srv.proc is not None
    pid = srv.proc.pid
    time.sleep(0.5)
    reset_peak_rss(pid)
    before_kib = rss_kib(pid, "VmRSS")
    payload = b'{"lines_mib": 50, "long_line": 1}'
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda n: lambda_client(srv.url).invoke(
            FunctionName=n, Payload=payload), names))  # fmt: skip
    assert [o["Payload"].read() for o in outs] == [b'"done"'] * 4
    grown_mib = (rss_kib(pid, "VmHWM") - before_kib) / 1024
    assert grown_mib < 50, f"server RSS grew by {grown_mib:.1f} MiB"
    for name in names:
        messages = [e["message"] for e in _logs(srv.url, name)]
        assert any(m.startswith("LOGS_DROPPED ") for m in messages)
        assert messages[-1].startswith("REPORT RequestId:")
    print(f"4 floods at once: RSS +{grown_mib:.1f} MiB")


def test_old_events_are_deleted_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_server(data, args=("--log-retention-days", "2")) as srv:
        client = lambda_client(srv.url)
        client.create_function(
            FunctionName="kept", Runtime="python3.11", Role=ROLE, Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    print('fresh')\n"})},
        )  # fmt: skip
        wait_active(client, "kept")
        client.invoke(FunctionName="kept")
    now_ms = int(time.time() * 1000)
    with sqlite3.connect(data / "logs.db") as db:
        db.executemany(
            "INSERT INTO log_events(account, region, log_group, log_stream, timestamp, ingested,"
            " message) VALUES ('000000000000', 'us-east-1', '/aws/lambda/kept', 's', ?, ?, ?)",
            [(now_ms - d * 86_400_000,) * 2 + (f"{d} days old\n",) for d in (5, 3, 1)],
        )
    with running_server(data, args=("--log-retention-days", "2")) as srv:
        messages = [e["message"] for e in _logs(srv.url, "kept")]
    assert "fresh\n" in messages
    assert "1 days old\n" in messages
    assert "3 days old\n" not in messages
    assert "5 days old\n" not in messages
