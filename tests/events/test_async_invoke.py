"""Event invocations end to end: a real server, real sandboxes, boto3.

The server runs with ``--async-retry-delays 1,1`` so Lambda's retry schedule (the same request id
on every attempt, then the OnFailure record) takes seconds, not minutes. Functions report what
they saw through their logs, read back over the logs route.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from support import ServerProcess, lambda_client, make_zip, wait_active

pytestmark = pytest.mark.sandbox

ROLE = "arn:aws:iam::000000000000:role/lambda-role"
ACCOUNT, REGION = "000000000000", "us-east-1"

PRINT_AND_RETURN = (
    "import json\n"
    "def handler(event, context):\n"
    "    print('RAN', context.aws_request_id, json.dumps(event))\n"
    "    return {'got': event}\n"
)
FAIL = (
    "import json\n"
    "def handler(event, context):\n"
    "    print('ATTEMPT', context.aws_request_id)\n"
    "    raise Exception('boom')\n"
)
SINK = (
    "import json\n"
    "def handler(event, context):\n"
    "    print('RECORD ' + json.dumps(event, separators=(',', ':')))\n"
)


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root (CI runs as root)")


def _server(data: Path, delays: str) -> ServerProcess:
    return ServerProcess(data, args=("--async-retry-delays", delays), prewarm="python3.11").start()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = _server(tmp_path_factory.mktemp("events") / "data", "1,1")
    yield s
    s.stop()


@pytest.fixture
def client(srv: ServerProcess) -> Any:
    return lambda_client(srv.url)


_n = iter(range(10_000))


def deploy(client: Any, source: str, **kw: Any) -> str:
    name = f"ev-{os.getpid()}-{next(_n)}"
    client.create_function(
        FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": source})}, **kw,
    )  # fmt: skip
    wait_active(client, name)
    return name


def arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def log_lines(srv: ServerProcess, name: str) -> list[str]:
    url = f"{srv.url}/_brazier/v1/functions/{quote(name, safe='')}/logs?limit=10000"
    reply = httpx.get(url, timeout=10)
    if reply.status_code == 404:
        return []
    assert reply.status_code == 200, reply.text
    return "".join(e["message"] for e in reply.json()["events"]).splitlines()


def wait_for(
    srv: ServerProcess, name: str, prefix: str, count: int = 1, timeout: float = 30.0
) -> list[str]:
    deadline = time.monotonic() + timeout
    found: list[str] = []
    while time.monotonic() < deadline:
        found = [ln for ln in log_lines(srv, name) if ln.startswith(prefix)]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{name}: {len(found)} of {count} {prefix!r} lines: {found}")


def records(srv: ServerProcess, sink: str, count: int = 1) -> list[dict[str, Any]]:
    return [json.loads(ln[len("RECORD ") :]) for ln in wait_for(srv, sink, "RECORD ", count)]


def send(client: Any, name: str, payload: Any) -> None:
    out = client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(payload))
    assert out["StatusCode"] == 202
    assert out["Payload"].read() == b""


def test_event_invoke_answers_202_and_runs(client: Any, srv: ServerProcess) -> None:
    name = deploy(client, PRINT_AND_RETURN)
    send(client, name, {"hello": 1})
    (line,) = wait_for(srv, name, "RAN ")
    assert line.endswith('{"hello": 1}')


def test_success_record_goes_to_the_on_success_function(client: Any, srv: ServerProcess) -> None:
    sink = deploy(client, SINK)
    name = deploy(client, PRINT_AND_RETURN)
    client.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": arn(sink)}}
    )
    send(client, name, {"a": "b"})
    (record,) = records(srv, sink)
    (ran,) = wait_for(srv, name, "RAN ")
    request_id = ran.split()[1]
    assert record["version"] == "1.0"
    assert record["timestamp"].endswith("Z")
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": arn(name) + ":$LATEST",
        "condition": "Success",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == {"a": "b"}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"got": {"a": "b"}}


def test_a_failing_event_is_retried_twice_then_reported(client: Any, srv: ServerProcess) -> None:
    sink = deploy(client, SINK)
    name = deploy(client, FAIL)
    client.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnFailure": {"Destination": arn(sink)}}
    )
    started = time.monotonic()
    send(client, name, {"n": 7})
    (record,) = records(srv, sink)
    assert time.monotonic() - started >= 2.0  # two 1 s retry delays
    attempts = wait_for(srv, name, "ATTEMPT ")
    time.sleep(1.5)  # no fourth attempt comes
    attempts = wait_for(srv, name, "ATTEMPT ")
    ids = {line.split()[1] for line in attempts}
    assert len(attempts) == 3, attempts
    assert len(ids) == 1, attempts
    ctx = record["requestContext"]
    assert ctx == {
        "requestId": ids.pop(),
        "functionArn": arn(name) + ":$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == {"n": 7}
    assert record["responseContext"] == {
        "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled",
    }  # fmt: skip
    assert record["responsePayload"]["errorMessage"] == "boom"
    assert record["responsePayload"]["errorType"] == "Exception"
    assert record["responsePayload"]["requestId"] == ctx["requestId"]
    assert set(record) == {
        "version", "timestamp", "requestContext", "requestPayload", "responseContext",
        "responsePayload",
    }  # fmt: skip


def test_maximum_retry_attempts_zero_runs_once(client: Any, srv: ServerProcess) -> None:
    sink = deploy(client, SINK)
    name = deploy(client, FAIL)
    client.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": arn(sink)}},
    )
    send(client, name, {})
    (record,) = records(srv, sink)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    time.sleep(2.5)  # past both retry delays: still one attempt
    assert len(wait_for(srv, name, "ATTEMPT ")) == 1


def test_reserved_concurrency_zero_goes_straight_to_failure(
    client: Any, srv: ServerProcess
) -> None:
    sink = deploy(client, SINK)
    name = deploy(client, PRINT_AND_RETURN)
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    client.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnFailure": {"Destination": arn(sink)}}
    )
    send(client, name, {"z": 0})
    (record,) = records(srv, sink)
    assert record["requestContext"]["condition"] == "ZeroReservedConcurrency"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["requestPayload"] == {"z": 0}
    assert "responseContext" not in record
    assert "responsePayload" not in record
    assert not [ln for ln in log_lines(srv, name) if ln.startswith("RAN ")]


def test_an_event_over_1_mb_is_413(client: Any) -> None:
    name = deploy(client, PRINT_AND_RETURN)
    big = json.dumps("x" * (1024 * 1024)).encode()
    with pytest.raises(client.exceptions.ClientError) as exc:
        client.invoke(FunctionName=name, InvocationType="Event", Payload=big)
    err = exc.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert err["Error"]["Code"] == "RequestEntityTooLargeException"
    assert err["Error"]["Message"] == (
        f"{len(big)} byte payload is too large for the Event invocation type (limit 1048576 bytes)"
    )


def test_event_age_exceeded_when_the_retry_would_come_too_late(tmp_path: Path) -> None:
    """With a 61 s retry delay and a 60 s maximum age, the first failure is final: the record
    says EventAgeExceeded after one attempt (as recorded against Lambda)."""
    s = _server(tmp_path / "data", "61")
    try:
        client = lambda_client(s.url)
        sink = deploy(client, SINK)
        name = deploy(client, FAIL)
        client.put_function_event_invoke_config(
            FunctionName=name,
            MaximumEventAgeInSeconds=60,
            DestinationConfig={"OnFailure": {"Destination": arn(sink)}},
        )
        send(client, name, {"old": True})
        (record,) = records(s, sink)
        assert record["requestContext"]["condition"] == "EventAgeExceeded"
        assert record["requestContext"]["approximateInvokeCount"] == 1
        assert record["responseContext"]["functionError"] == "Unhandled"
    finally:
        s.stop()


def test_an_accepted_event_survives_kill_9(tmp_path: Path) -> None:
    """202, then the server is killed while the handler runs: after a restart the event runs to
    its end (at least once)."""
    data = tmp_path / "data"
    slow = (
        "import time\n"
        "def handler(event, context):\n"
        "    print('BEGIN', context.aws_request_id)\n"
        "    time.sleep(2)\n"
        "    print('DONE', context.aws_request_id)\n"
    )
    s = _server(data, "1,1")
    try:
        client = lambda_client(s.url)
        name = deploy(client, slow, Timeout=20)
        send(client, name, {"durable": True})
        wait_for(s, name, "BEGIN ")
    finally:
        s.kill9()
    again = ServerProcess(data, port=s.port, args=s.args[:2], prewarm="python3.11").start()
    try:
        (done,) = wait_for(again, name, "DONE ", timeout=40)
        begins = wait_for(again, name, "BEGIN ", count=2)
        assert {ln.split()[1] for ln in begins} == {done.split()[1]}  # the same request id
    finally:
        again.stop()
