"""Reading logs through /_brazier/v1/functions/<name>/logs: pages bounded in events and bytes,
bad paging parameters refused with a 400 (a real server, real SQLite)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import botocore.auth
import botocore.credentials
import httpx
import pytest
from botocore.awsrequest import AWSRequest

from support import ServerProcess, running_server

BIG = 200 * 1024


def _get(srv: ServerProcess, query: str) -> httpx.Response:
    url = f"{srv.url}/_brazier/v1/functions/big/logs?{query}"
    req = AWSRequest(method="GET", url=url)
    creds = botocore.credentials.Credentials("AKIDEXAMPLE", "x" * 40)
    botocore.auth.SigV4Auth(creds, "lambda", "us-east-1").add_auth(req)
    return httpx.get(url, headers=dict(req.headers.items()))


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("log-reads") / "data"
    with running_server(data) as s:
        now = int(time.time() * 1000)
        with sqlite3.connect(data / "logs.db") as db:
            db.executemany(
                "INSERT INTO log_events(account, region, log_group, log_stream, timestamp,"
                " ingested, message) VALUES ('000000000000', 'us-east-1', '/aws/lambda/big',"
                " 's', ?, ?, ?)",
                [(now, now, f"{i:03d}" + "m" * BIG) for i in range(20)],
            )
        yield s


def test_a_page_holds_at_most_1_mb_and_paging_reaches_every_event(srv: ServerProcess) -> None:
    seen: list[str] = []
    after = 0
    pages = 0
    while True:
        reply = _get(srv, f"after={after}&limit=10000")
        assert reply.status_code == 200, reply.text
        events = reply.json()["events"]
        if not events:
            break
        pages += 1
        assert sum(len(e["message"]) for e in events) <= 1024 * 1024
        seen.extend(e["message"][:3] for e in events)
        after = events[-1]["seq"]
    assert seen == [f"{i:03d}" for i in range(20)]
    assert pages == 4  # five 200 KB events a page


@pytest.mark.parametrize(
    "query", ["limit=-1", "limit=0", "after=-5", "after=99999999999999999999999", "limit=x"]
)
def test_bad_paging_parameters_are_a_400(srv: ServerProcess, query: str) -> None:
    reply = _get(srv, query)
    assert reply.status_code == 400, reply.text
    assert reply.headers["x-amzn-ErrorType"].startswith("InvalidParameterValueException")
