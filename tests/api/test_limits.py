"""Request body caps: refused by Content-Length before reading, reading stopped at the cap for
chunked bodies, the sender authenticated before a large body is read (issue 11, item 4)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from support import ServerProcess, lambda_client, make_zip, running_server, wait_active

ZIP_REQUEST_CAP = 70_167_211
ROLE = "arn:aws:iam::111122223333:role/r"


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    want = int(headers.get("content-length", "0"))
    while len(body) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _send_head(port: int, head: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
    return sock


def _head_only(port: int, method: str, path: str, length: int, **extra: str) -> tuple[int, Any]:
    """Announce a body of ``length`` bytes, send none of it, and wait (≤ 5 s) for the answer."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in extra.items()]
    with _send_head(port, "\r\n".join(lines)) as sock:
        status, headers, body = _answer(sock)
    return status, (headers, json.loads(body) if body else None)


def test_an_oversized_content_length_is_refused_before_the_body(server: ServerProcess) -> None:
    status, (headers, body) = _head_only(
        server.port, "POST", "/2015-03-31/functions/f/invocations", 7 * 1024 * 1024
    )
    assert status == 413
    assert headers["x-amzn-errortype"] == "RequestEntityTooLargeException"
    assert body["message"] == (
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    )
    status, (headers, body) = _head_only(
        server.port, "POST", "/2015-03-31/functions", ZIP_REQUEST_CAP + 1
    )
    assert status == 413
    assert body["message"] == (
        f"Request must be smaller than {ZIP_REQUEST_CAP} bytes for the CreateFunction operation"
    )
    # A small operation's cap is small.
    status, (headers, body) = _head_only(
        server.port, "PUT", "/2017-10-31/functions/f/concurrency", 1024 * 1024
    )
    assert status == 413
    assert "PutFunctionConcurrency operation" in body["message"]


def test_brazier_routes_refuse_large_bodies_before_reading(server: ServerProcess) -> None:
    # The reproduction: a 300 MB body to the logs route was read whole.
    status, (headers, _) = _head_only(
        server.port, "GET", "/_brazier/v1/functions/x/logs", 300 * 1024 * 1024
    )
    assert status == 413
    assert headers["x-amzn-errortype"] == "RequestEntityTooLargeException"
    status, _ = _head_only(
        server.port, "GET", "/_brazier/v1/layers/l/versions/1/sbom", 300 * 1024 * 1024
    )
    assert status == 413


def test_function_url_bodies_are_capped(server: ServerProcess) -> None:
    status, (headers, body) = _head_only(
        server.port, "POST", f"/lambda-url/{'z' * 32}/", 7 * 1024 * 1024
    )
    assert status == 413
    assert headers["x-amzn-errortype"] == "RequestEntityTooLargeException"
    assert "6291456 bytes" in body["Message"]


def test_a_chunked_body_is_refused_at_the_cap(server: ServerProcess) -> None:
    """No Content-Length: the server stops reading at the operation's cap (256 KiB here) and
    answers while the client is still sending."""
    head = "\r\n".join(
        [
            "PUT /2017-10-31/functions/f/concurrency HTTP/1.1",
            "Host: 127.0.0.1",
            "Transfer-Encoding: chunked",
        ]
    )
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    with _send_head(server.port, head, chunk * 5) as sock:  # 320 KiB, never terminated
        status, _, body = _answer(sock)
    assert status == 413
    assert "PutFunctionConcurrency operation" in json.loads(body)["message"]


def test_an_unsigned_large_body_is_refused_before_it_is_read(secured: Any) -> None:
    srv, _ = secured
    status, (headers, _) = _head_only(srv.port, "POST", "/2015-03-31/functions", 60_000_000)
    assert status == 403
    assert headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    chunked = "\r\n".join(
        ["POST /2015-03-31/functions HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked"]
    )
    with _send_head(srv.port, chunked, b"10\r\n" + b"x" * 16 + b"\r\n") as sock:
        status, headers, _ = _answer(sock)
    assert status == 403


def test_an_unknown_key_is_refused_before_a_large_body_is_read(secured: Any) -> None:
    srv, _ = secured
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKIANOSUCHKEY0000000/20261203/us-east-1/lambda/aws4_request,"
        " SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
    )
    now = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    auth = auth.replace("20261203", now[:8])
    status, (headers, _) = _head_only(
        srv.port,
        "POST",
        "/2015-03-31/functions",
        60_000_000,
        Authorization=auth,
        X_Amz_Date=now,
    )
    assert status == 403
    assert headers["x-amzn-errortype"] == "UnrecognizedClientException"


def test_signed_large_bodies_are_still_accepted_and_checked(secured: Any) -> None:
    """A 3 MB zip: spooled to disk, the signature checked once the body is in."""
    srv, key = secured
    client = lambda_client(srv.url, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    code = make_zip(
        {
            "app.py": "def handler(event, context):\n    return {'ok': True}\n",
            "blob.bin": os.urandom(3 * 1024 * 1024),
        }
    )
    out = client.create_function(
        FunctionName="big",
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": code},
    )
    assert out["CodeSize"] == len(code)
    assert out["CodeSha256"] == base64.b64encode(hashlib.sha256(code).digest()).decode()
    wait_active(client, "big")

    # The same request with its body changed after signing is refused.
    def tamper(request: Any, **_: Any) -> None:
        request.body = request.body.replace(b'"big"', b'"bog"')

    client.meta.events.register("before-send.lambda.CreateFunction", tamper)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.create_function(
            FunctionName="big",
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": code},
        )
    assert exc.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_a_declared_payload_hash_is_checked_against_the_body(secured: Any) -> None:
    """X-Amz-Content-SHA256 lets the signature be checked before the body; the body must then
    match it."""
    srv, key = secured
    client = lambda_client(srv.url, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    big = json.dumps({"pad": "x" * (2 * 1024 * 1024)}).encode()

    def declare(request: Any, **_: Any) -> None:
        request.headers["X-Amz-Content-SHA256"] = "ab" * 32  # not the body's hash

    client.meta.events.register("before-sign.lambda.Invoke", declare)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.invoke(FunctionName="nosuch", Payload=big)
    assert exc.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_boto3_gets_lambdas_error_for_an_oversized_invoke(client: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.invoke(FunctionName="nosuch", Payload=b"x" * (6 * 1024 * 1024 + 1))
    err = exc.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert err["Error"]["Code"] == "RequestEntityTooLargeException"


@pytest.mark.parametrize("op", ["create", "update", "layer"])
def test_a_large_zip_is_taken_whole_whatever_else_says_zipfile(
    client: Any, fname: str, op: str
) -> None:
    """Large code uploads are decoded from the spooled body; a "ZipFile" elsewhere in the
    request (here an environment variable, serialized first) must not be taken for it."""
    code = make_zip(
        {
            "app.py": "def handler(event, context):\n    return {'ok': True}\n",
            "blob.bin": os.urandom(2 * 1024 * 1024),
        }
    )
    sha = base64.b64encode(hashlib.sha256(code).digest()).decode()
    role = "arn:aws:iam::000000000000:role/r"
    env = {"Variables": {"ZipFile": base64.b64encode(b"not the code").decode()}}
    if op == "layer":
        out = client.publish_layer_version(
            LayerName=fname, Description='"ZipFile":"QUJD"', Content={"ZipFile": code}
        )
        assert out["Content"]["CodeSha256"] == sha
        assert out["Content"]["CodeSize"] == len(code)
        return
    out = client.create_function(
        FunctionName=fname,
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Environment=env,
        Code={"ZipFile": code if op == "create" else make_zip({"app.py": "x = 1"})},
    )
    if op == "update":
        wait_active(client, fname)
        out = client.update_function_code(FunctionName=fname, ZipFile=code)
    assert out["CodeSha256"] == sha
    assert out["CodeSize"] == len(code)


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def test_a_50_mb_code_upload_grows_the_server_by_less_than_twice_the_cap(
    tmp_path: Any,
) -> None:
    """Issue 11's target: no request grows the server's RSS by more than 2x the largest cap
    (70 MB). A 49 MB zip (a 68 MB request) was held as the body, the JSON string and the
    decoded zip at once: +245 MB."""
    import threading
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return 1\n")
        zf.writestr("blob.bin", os.urandom(49 * 1024 * 1024))
    code = buf.getvalue()
    with running_server(tmp_path / "data") as srv:
        assert srv.proc is not None
        pid = srv.proc.pid
        client = lambda_client(srv.url)
        client.list_functions()
        before = peak = _rss_mib(pid)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _rss_mib(pid))
                done.wait(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            out = client.create_function(
                FunctionName="fifty",
                Runtime="python3.11",
                Role="arn:aws:iam::000000000000:role/r",
                Handler="app.handler",
                Code={"ZipFile": code},
            )
        finally:
            done.set()
            sampler.join()
        assert out["CodeSize"] == len(code)
    assert peak - before < 2 * 70, f"RSS {before:.0f} -> {peak:.0f} MiB"
