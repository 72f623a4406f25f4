"""SQS destinations against a real SQS-compatible server: moto's standalone server (PyPI,
``moto[server]``), started here on a free loopback port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from support import ServerProcess, free_port, lambda_client, make_zip, wait_active

pytestmark = pytest.mark.sandbox

ROLE = "arn:aws:iam::000000000000:role/lambda-role"
REGION = "us-east-1"
MOTO_ACCOUNT = "123456789012"  # the account moto's queues belong to
FAIL = "def handler(event, context):\n    raise Exception('boom')\n"
OK = "def handler(event, context):\n    return {'echo': event}\n"


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root (CI runs as root)")


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(log.read_text()[-2000:]) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _sqs(url: str) -> Any:
    return boto3.client(
        "sqs", endpoint_url=url, region_name=REGION,
        aws_access_key_id="x", aws_secret_access_key="x",
    )  # fmt: skip


def _receive(sqs: Any, queue_url: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
        if got.get("Messages"):
            return dict(got["Messages"][0])
    raise AssertionError("no message arrived")


def _deploy(client: Any, name: str, source: str) -> None:
    client.create_function(
        FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": source})},
    )  # fmt: skip
    wait_active(client, name)


def test_records_reach_sqs_destinations(moto: str, tmp_path: Path) -> None:
    sqs = _sqs(moto)
    failures = sqs.create_queue(QueueName="failures")["QueueUrl"]
    successes = sqs.create_queue(QueueName="successes")["QueueUrl"]
    arn = f"arn:aws:sqs:{REGION}:{MOTO_ACCOUNT}:"
    srv = ServerProcess(
        tmp_path / "data", args=("--async-retry-delays", "1,1", "--sqs-endpoint", moto),
        prewarm="python3.11",
    ).start()  # fmt: skip
    try:
        client = lambda_client(srv.url)
        _deploy(client, "bad", FAIL)
        _deploy(client, "good", OK)
        client.put_function_event_invoke_config(
            FunctionName="bad", MaximumRetryAttempts=1,
            DestinationConfig={"OnFailure": {"Destination": arn + "failures"}},
        )  # fmt: skip
        client.put_function_event_invoke_config(
            FunctionName="good",
            DestinationConfig={"OnSuccess": {"Destination": arn + "successes"}},
        )
        for name in ("bad", "good"):
            out = client.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"k": 1}')
            assert out["StatusCode"] == 202
        failure = json.loads(_receive(sqs, failures)["Body"])
        success = json.loads(_receive(sqs, successes)["Body"])
    finally:
        srv.stop()
    assert failure["version"] == "1.0"
    assert failure["requestContext"]["condition"] == "RetriesExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 2
    assert failure["requestContext"]["functionArn"].endswith(":function:bad:$LATEST")
    assert failure["requestPayload"] == {"k": 1}
    assert failure["responseContext"]["functionError"] == "Unhandled"
    assert failure["responsePayload"]["errorMessage"] == "boom"
    assert success["requestContext"]["condition"] == "Success"
    assert success["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert success["responsePayload"] == {"echo": {"k": 1}}


def test_dead_letter_queue_gets_the_original_event(moto: str, tmp_path: Path) -> None:
    sqs = _sqs(moto)
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    srv = ServerProcess(
        tmp_path / "data", args=("--async-retry-delays", "1,1", "--aws-endpoint", moto),
        prewarm="python3.11",
    ).start()  # fmt: skip
    try:
        client = lambda_client(srv.url)
        client.create_function(
            FunctionName="dl", Runtime="python3.11", Role=ROLE, Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": FAIL})},
            DeadLetterConfig={"TargetArn": f"arn:aws:sqs:{REGION}:{MOTO_ACCOUNT}:dlq"},
        )  # fmt: skip
        wait_active(client, "dl")
        client.put_function_event_invoke_config(FunctionName="dl", MaximumRetryAttempts=0)
        client.invoke(FunctionName="dl", InvocationType="Event", Payload=b'{"raise_error": 1}')
        got = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"], WaitTimeSeconds=20)[
            "Messages"
        ][0]
    finally:
        srv.stop()
    assert json.loads(got["Body"]) == {"raise_error": 1}
    attrs = got["MessageAttributes"]
    assert attrs["ErrorCode"] == {"DataType": "Number", "StringValue": "200"}
    assert attrs["ErrorMessage"] == {"DataType": "String", "StringValue": "boom"}
    assert attrs["RequestID"]["DataType"] == "String"
    assert len(attrs["RequestID"]["StringValue"]) == 36


def test_an_unreachable_queue_keeps_the_record_until_it_returns(tmp_path: Path) -> None:
    """The SQS server is down when the record is due: it is retried (kept in the queue) and
    delivered once the server is up."""
    port = free_port()
    moto_url = f"http://127.0.0.1:{port}"
    srv = ServerProcess(
        tmp_path / "data", args=("--async-retry-delays", "1,1", "--sqs-endpoint", moto_url),
        prewarm="python3.11",
    ).start()  # fmt: skip
    proc = None
    try:
        client = lambda_client(srv.url)
        _deploy(client, "bad", FAIL)
        client.put_function_event_invoke_config(
            FunctionName="bad", MaximumRetryAttempts=0,
            DestinationConfig={
                "OnFailure": {"Destination": f"arn:aws:sqs:{REGION}:{MOTO_ACCOUNT}:later"}
            },
        )  # fmt: skip
        client.invoke(FunctionName="bad", InvocationType="Event", Payload=b"{}")
        time.sleep(3)  # the attempt fails, the first delivery attempts find nothing listening
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(moto_url + "/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        sqs = _sqs(moto_url)
        queue = sqs.create_queue(QueueName="later")["QueueUrl"]
        body = json.loads(_receive(sqs, queue, timeout=40)["Body"])
        assert body["requestContext"]["condition"] == "RetriesExhausted"
    finally:
        srv.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(10)
