"""A data dir whose logs.db predates owned log groups (schema 1) is migrated at start: each
group's events go to the account and region of the functions that use it (a real server)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import botocore.auth
import botocore.credentials
import httpx
from botocore.awsrequest import AWSRequest

from support import lambda_client, running_server
from test_functions import create

_SCHEMA_1 = """
CREATE TABLE log_events (
    seq INTEGER PRIMARY KEY, log_group TEXT NOT NULL, log_stream TEXT NOT NULL,
    timestamp INTEGER NOT NULL, ingested INTEGER NOT NULL, message TEXT NOT NULL
);
CREATE INDEX log_events_group ON log_events(log_group, timestamp, seq);
"""


def _messages(url: str, function: str, region: str) -> list[str]:
    target = f"{url}/_brazier/v1/functions/{function}/logs"
    req = AWSRequest(method="GET", url=target)
    creds = botocore.credentials.Credentials("AKIDEXAMPLE", "x" * 40)
    botocore.auth.SigV4Auth(creds, "lambda", region).add_auth(req)  # the region is the scope's
    reply = httpx.get(target, headers=dict(req.headers.items()))
    assert reply.status_code == 200, reply.text
    return [e["message"] for e in reply.json()["events"]]


def test_schema_1_events_follow_their_functions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_server(data) as srv:
        create(lambda_client(srv.url, region="us-east-1"), "east")
        create(lambda_client(srv.url, region="eu-west-1"), "west",
               LoggingConfig={"LogGroup": "/custom/west"})  # fmt: skip
    (data / "logs.db").unlink()
    for extra in ("logs.db-wal", "logs.db-shm"):
        (data / extra).unlink(missing_ok=True)
    now_ms = int(time.time() * 1000)  # within retention
    with sqlite3.connect(data / "logs.db") as db:
        db.executescript(_SCHEMA_1)
        db.executemany(
            "INSERT INTO log_events(log_group, log_stream, timestamp, ingested, message)"
            " VALUES (?, 's', ?, ?, ?)",
            [
                (group, now_ms, now_ms, line)
                for group, line in [
                    ("/aws/lambda/east", "east line\n"),
                    ("/custom/west", "west line\n"),
                ]
            ],
        )
    with running_server(data) as srv:
        assert _messages(srv.url, "east", "us-east-1") == ["east line\n"]
        assert _messages(srv.url, "east", "eu-west-1") == []
        assert _messages(srv.url, "west", "eu-west-1") == ["west line\n"]
        assert _messages(srv.url, "west", "us-east-1") == []
