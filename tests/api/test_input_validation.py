"""Hostile input gets Lambda's 400 answers, never a 500 or a traceback (issue 11, item 9).

Each case here was a 500 with a traceback in the server log before decision 0016: JSON nested
100,000 levels (RecursionError), a layer version number past Java's long (OverflowError from
SQLite), a Handler with a NUL (accepted at create, then every Invoke failed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest

from support import HELLO_PY, ServerProcess, lambda_client

ROLE = "arn:aws:iam::123456789012:role/r"
LAYER_ARN_PREFIX = "arn:aws:lambda:us-east-1:000000000000:layer"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of this module's own, so its log holds only this module's requests."""
    server = ServerProcess(tmp_path_factory.mktemp("validation") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def lam(srv: ServerProcess) -> Any:
    return lambda_client(srv.url, validate=False)


def assert_log_clean(log: Path) -> None:
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


def post(srv: ServerProcess, path: str, body: bytes) -> httpx.Response:
    return httpx.post(
        srv.url + path, content=body, headers={"content-type": "application/json"}, timeout=30
    )


def error_of(reply: httpx.Response) -> tuple[int, str, str]:
    body = reply.json()
    return reply.status_code, reply.headers["x-amzn-ErrorType"], body.get("message", "")


def client_error(
    exc: pytest.ExceptionInfo[botocore.exceptions.ClientError],
) -> tuple[int, str, str]:
    r = exc.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    "path",
    [
        "/2015-03-31/functions",  # a control-plane body
        "/2015-03-31/functions/nested/invocations",  # an Invoke payload
        "/2018-10-31/layers/nested/versions",
    ],
)
def test_deeply_nested_json_is_invalid_request_content(srv: ServerProcess, path: str) -> None:
    status, code, message = error_of(post(srv, path, DEEP))
    assert (status, code) == (400, "InvalidRequestContentException")
    assert message.startswith("Could not parse request body into json")
    assert "nesting depth" in message
    assert_log_clean(srv.log)


def test_nan_and_infinity_are_not_json(srv: ServerProcess) -> None:
    for token in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"FunctionName":"f","Timeout":' + token + b"}"
        status, code, _ = error_of(post(srv, "/2015-03-31/functions", body))
        assert (status, code) == (400, "InvalidRequestContentException")
    assert_log_clean(srv.log)


@pytest.mark.parametrize("number", ["99999999999999999999999", "9223372036854775808", "1e3", "٣"])
def test_layer_version_number_beyond_long_is_a_validation_error(
    srv: ServerProcess, lam: Any, number: str
) -> None:
    paths = [
        ("GET", f"/2018-10-31/layers/l/versions/{number}"),
        ("DELETE", f"/2018-10-31/layers/l/versions/{number}"),
        ("GET", f"/2018-10-31/layers/l/versions/{number}/policy"),
    ]
    for method, path in paths:
        reply = httpx.request(method, srv.url + path, timeout=30)
        status, code, message = error_of(reply)
        assert (status, code) == (400, "ValidationException"), (path, reply.text)
        assert message == (
            f"1 validation error detected: Value '{number}' at 'versionNumber' failed to"
            " satisfy constraint: Member must be a number"
        )
    assert_log_clean(srv.log)


def test_largest_long_layer_version_is_simply_not_found(srv: ServerProcess, lam: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        lam.get_layer_version(LayerName="l", VersionNumber=2**63 - 1)
    assert client_error(exc)[:2] == (404, "ResourceNotFoundException")
    assert_log_clean(srv.log)


def test_body_integer_beyond_its_type_is_invalid_request_content(srv: ServerProcess) -> None:
    body = json.dumps({"FunctionName": "f", "Timeout": 10**23}).encode()
    status, code, message = error_of(post(srv, "/2015-03-31/functions", body))
    assert (status, code) == (400, "InvalidRequestContentException")
    assert message == (
        "Could not parse request body into json: Numeric value (100000000000000000000000)"
        " out of range of int"
    )
    assert_log_clean(srv.log)


@pytest.mark.parametrize("handler", ["app\x00.handler", "app.handler\x00", "\x00"])
def test_handler_with_nul_is_refused_at_create(srv: ServerProcess, lam: Any, handler: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        lam.create_function(
            FunctionName="nul-handler",
            Runtime="python3.11",
            Role=ROLE,
            Handler=handler,
            Code={"ZipFile": HELLO_PY},
        )
    assert client_error(exc) == (
        400,
        "ValidationException",
        "1 validation error detected: Value at 'handler' failed to satisfy constraint: Member"
        " must not contain NUL or unpaired surrogate characters",
    )
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        lam.get_function(FunctionName="nul-handler")
    assert client_error(missing)[1] == "ResourceNotFoundException"
    assert_log_clean(srv.log)


def test_nul_in_handler_or_environment_is_refused_at_update(srv: ServerProcess, lam: Any) -> None:
    lam.create_function(
        FunctionName="nul-update",
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": HELLO_PY},
    )
    for change in (
        {"Handler": "app.\x00handler"},
        {"Environment": {"Variables": {"KEY": "a\x00b"}}},
    ):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            lam.update_function_configuration(FunctionName="nul-update", **change)
        assert client_error(exc)[:2] == (400, "ValidationException")
        # Environment values are sensitive: the message does not echo them.
        assert "a\x00b" not in client_error(exc)[2]
    assert lam.get_function_configuration(FunctionName="nul-update")["Handler"] == "app.handler"
    assert_log_clean(srv.log)


def test_unpaired_surrogate_is_refused(srv: ServerProcess) -> None:
    body = (
        b'{"FunctionName":"surrogate","Runtime":"python3.11","Role":"' + ROLE.encode() + b'",'
        b'"Handler":"app.handler","Description":"\\ud800","Code":{"ZipFile":"UEsFBgAAAAAAAAAA'
        b'AAAAAAAAAAAAAA=="}}'
    )
    status, code, message = error_of(post(srv, "/2015-03-31/functions", body))
    assert (status, code) == (400, "ValidationException"), message
    assert "'description'" in message
    assert_log_clean(srv.log)


@pytest.mark.parametrize(
    "target",
    [
        "/_brazier/v1/functions/f/logs?after=9223372036854775808",
        "/_brazier/v1/functions/f/logs?limit=-1",
        "/_brazier/v1/functions/f/logs?after=-1",
        "/_brazier/v1/layers/l/versions/9223372036854775808/sbom",
        "/_brazier/v1/layers/l/versions/%D9%A3/sbom",
    ],
)
def test_brazier_routes_refuse_numbers_sqlite_cannot_hold(srv: ServerProcess, target: str) -> None:
    reply = httpx.get(srv.url + target, timeout=30)
    assert reply.status_code == 400, reply.text
    assert reply.json()["Type"] == "User"
    assert_log_clean(srv.log)


@pytest.mark.parametrize("signature", ["%C2%80", "%ED%A0%80", "%00"])
def test_code_link_with_a_non_ascii_signature_is_denied(srv: ServerProcess, signature: str) -> None:
    target = f"/_brazier/code/%20?Expires=2147483647&Signature={signature}"
    reply = httpx.get(srv.url + target, timeout=30)
    assert reply.status_code == 403, reply.text
    assert b"<Code>AccessDenied</Code>" in reply.content
    assert_log_clean(srv.log)


def test_function_url_request_past_the_invoke_limit_is_413(srv: ServerProcess, lam: Any) -> None:
    """5 MB of binary body is 6.7 MB once base64-encoded into the event: Invoke's 6 MB limit."""
    lam.create_function(
        FunctionName="url-big", Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": HELLO_PY},
    )  # fmt: skip
    lam.add_permission(
        FunctionName="url-big", StatementId="public", Action="lambda:InvokeFunctionUrl",
        Principal="*", FunctionUrlAuthType="NONE",
    )  # fmt: skip
    url = lam.create_function_url_config(FunctionName="url-big", AuthType="NONE")["FunctionUrl"]
    url_id = url.split("//")[1].split(".")[0]
    reply = httpx.post(
        f"{srv.url}/lambda-url/{url_id}/upload",
        content=b"\xff" * 5_000_000,
        headers={"content-type": "application/octet-stream"},
        timeout=60,
    )
    assert reply.status_code == 413, reply.text
    assert reply.headers["x-amzn-ErrorType"] == "RequestEntityTooLargeException"
    assert "6291456" in reply.json()["Message"]
    assert_log_clean(srv.log)
