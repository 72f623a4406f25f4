"""A streamed response that fails mid-way, end to end: a provided.al2023 bootstrap speaks the
Runtime API over a raw socket (chunked body, error trailers) and boto3 invokes it."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from support import Deploy, call

# The error-body trailer is given by the event: valid base64, garbage, or left out.
BOOTSTRAP = r"""#!/usr/bin/python3
import http.client, json, os, socket
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
host, port = api.rsplit(":", 1)
while True:
    c = http.client.HTTPConnection(api)
    c.request("GET", "/2018-06-01/runtime/invocation/next")
    r = c.getresponse()
    event = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    c.close()
    trailer = "" if event["body"] is None else f"Lambda-Runtime-Function-Error-Body: {event['body']}\r\n"
    s = socket.create_connection((host, int(port)))
    s.sendall((
        f"POST /2018-06-01/runtime/invocation/{rid}/response HTTP/1.1\r\nHost: {api}\r\n"
        "Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n"
        "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
        "Content-Type: application/octet-stream\r\n\r\n4\r\npart\r\n0\r\n"
        "Lambda-Runtime-Function-Error-Type: Function.StreamError\r\n" + trailer + "\r\n"
    ).encode())
    s.recv(4096)
    s.close()
"""

GOOD = {"errorType": "Error", "errorMessage": "mid-stream", "trace": []}


@pytest.mark.parametrize(
    ("trailer", "expected"),
    [
        (base64.b64encode(json.dumps(GOOD).encode()).decode(), GOOD),
        (
            "%%%not-base64%%%",
            {
                "errorType": "Function.StreamError",
                "errorMessage": "RequestId: {id} Error: the runtime's "
                "Lambda-Runtime-Function-Error-Body trailer is not valid base64",
            },
        ),
        (
            None,
            {
                "errorType": "Function.StreamError",
                "errorMessage": "RequestId: {id} Error: the runtime reported "
                "Function.StreamError mid-stream",
            },
        ),
    ],
)
def test_streamed_error_reaches_the_invoker(
    client: Any, deploy: Deploy, trailer: str | None, expected: dict[str, Any]
) -> None:
    name = deploy(
        {"bootstrap": BOOTSTRAP}, modes={"bootstrap": 0o755},
        runtime="provided.al2023", handler="x",
    )  # fmt: skip
    out, body = call(client, name, {"body": trailer})
    assert out["StatusCode"] == 200
    assert out["FunctionError"] == "Unhandled"
    request_id = out["ResponseMetadata"]["RequestId"]
    assert body == {
        k: v.format(id=request_id) if isinstance(v, str) else v for k, v in expected.items()
    }
