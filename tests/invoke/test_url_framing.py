"""Function URL replies a tenant can't break (issue 19, items 1-3), checked on the wire.

A raw-socket client keeps one connection alive across requests, so a reply that carries bytes
it shouldn't (a body after a 204, a second framing header) shows up as a wrong next reply.
The function hands back whatever bytes the test posts, so each result is exact on the wire.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from support import lambda_client, make_zip, wait_active

ECHO_RESULT = r"""
import base64, json
def handler(event, context):
    if event.get("body"):
        return base64.b64decode(event["body"])  # bytes go to the Runtime API unchanged
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps(event)}
"""

FAKE = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nfake"


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def framing(self) -> list[str]:
        return [k for k, _ in self.headers if k in ("content-length", "transfer-encoding")]


class Conn:
    """HTTP/1.1 over a plain socket, keep-alive, nothing hidden."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, method: str, target: str, body: bytes = b"", host: str = "x") -> None:
        head = f"{method} {target} HTTP/1.1\r\nhost: {host}\r\n"
        head += f"content-type: application/octet-stream\r\ncontent-length: {len(body)}\r\n\r\n"
        self.sock.sendall(head.encode() + body)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed; unread: {self.buf!r}")
        self.buf += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self, method: str = "GET") -> Reply:
        status = int(self._line().split(b" ")[1])
        headers = []
        while line := self._line():
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.lower(), value.strip()))
        framing = dict(h for h in headers if h[0] in ("content-length", "transfer-encoding"))
        if method == "HEAD" or status in (204, 304) or status < 200:
            body = b""
        elif "content-length" in framing:
            body = self._take(int(framing["content-length"]))
        else:
            body = b""
            while size := int(self._line(), 16):
                body += self._take(size)
                self._take(2)
            self._take(2)
        return Reply(status, headers, body)

    def call(self, target: str, result: bytes = b"", method: str = "POST") -> Reply:
        self.send(method, target, result)
        return self.reply(method)


@pytest.fixture(scope="module")
def url(server: Any) -> str:
    """A public URL of a function that answers with the bytes it is sent."""
    client = lambda_client(server.url)
    name = "url-framing"
    client.create_function(
        FunctionName=name, Runtime="python3.11", Role="arn:aws:iam::000000000000:role/r",
        Handler="app.handler", Code={"ZipFile": make_zip({"app.py": ECHO_RESULT})},
    )  # fmt: skip
    wait_active(client, name)
    cfg = client.create_function_url_config(FunctionName=name, AuthType="NONE")
    client.add_permission(
        FunctionName=name, StatementId="public", Action="lambda:InvokeFunctionUrl",
        Principal="*", FunctionUrlAuthType="NONE",
    )  # fmt: skip
    return str(cfg["FunctionUrl"])


@pytest.fixture
def conn(server: Any) -> Iterator[Conn]:
    c = Conn(server.port)
    yield c
    c.close()


def _id(url: str) -> str:
    return url.split("//")[1].split(".", maxsplit=1)[0]


def _path(url: str) -> str:
    return f"/lambda-url/{_id(url)}/"


def _result(**kw: Any) -> bytes:
    return json.dumps(kw).encode()


def test_brazier_owns_the_framing(url: str, conn: Conn) -> None:
    hostile = {
        "transfer-encoding": "chunked", "Content-Length": "999", "connection": "close",
        "keep-alive": "timeout=999", "upgrade": "h2c", "te": "trailers", "trailer": "x-t",
        "proxy-authenticate": "Basic", "server": "evil", "date": "Mon, 01 Jan 1990 00:00:00 GMT",
        "x-amzn-RequestId": "forged", "x-amzn-ErrorType": "forged", "x-kept": "yes",
    }  # fmt: skip
    reply = conn.call(_path(url), _result(statusCode=200, headers=hostile, body="hello"))
    assert reply.status == 200
    assert reply.body == b"hello"
    assert reply.framing() == ["content-length"], reply.headers
    assert reply.all("content-length") == ["5"]
    for name in ("connection", "keep-alive", "upgrade", "te", "trailer", "proxy-authenticate",
                 "x-amzn-errortype"):  # fmt: skip
        assert reply.all(name) == [], (name, reply.headers)
    assert reply.all("server") != ["evil"] and len(reply.all("server")) <= 1
    assert len(reply.all("date")) == 1 and "1990" not in reply.all("date")[0]
    assert len(reply.all("x-amzn-requestid")) == 1
    assert reply.all("x-amzn-requestid") != ["forged"]
    assert reply.all("x-kept") == ["yes"]
    # The connection stayed usable, and in step.
    after = conn.call(_path(url), _result(statusCode=200, body="second"))
    assert (after.status, after.body) == (200, b"second")


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_after_204_or_304(url: str, conn: Conn, status: int) -> None:
    smuggled = _result(statusCode=status, headers={"content-length": "43"}, body=FAKE.decode())
    reply = conn.call(_path(url), smuggled)
    assert reply.status == status
    assert reply.framing() == [], reply.headers
    # Had the fake response followed the 204/304, it would be read as this reply.
    after = conn.call(_path(url), _result(statusCode=200, body="second"))
    assert (after.status, after.body) == (200, b"second")


MALFORMED = {
    "CRLF in a header name": b'{"statusCode":200,"headers":{"x-a\\r\\nx-b":"1"}}',
    "CRLF in a header value": b'{"statusCode":200,"headers":{"x-a":"1\\r\\nset-cookie: e=1"}}',
    "LF in a header value": b'{"statusCode":200,"headers":{"x-a":"1\\nx-b: 2"}}',
    "CRLF in a cookie": b'{"statusCode":200,"cookies":["a=1\\r\\nx-evil: 1"]}',
    "statusCode 99999": b'{"statusCode":99999}',
    "statusCode -1": b'{"statusCode":-1}',
    "statusCode abc": b'{"statusCode":"abc"}',
    "statusCode 1e400": b'{"statusCode":1e400}',
    "statusCode true": b'{"statusCode":true}',
    "statusCode 101": b'{"statusCode":101,"body":"x"}',
    "statusCode 100": b'{"statusCode":100}',
    "headers as a list": b'{"statusCode":200,"headers":[["a","b"]]}',
    "a header value outside latin-1": '{"statusCode":200,"headers":{"x-a":"€"}}'.encode(),
    "a null header value": b'{"statusCode":200,"headers":{"x-a":null}}',
    "an object header value": b'{"statusCode":200,"headers":{"x-a":{"b":1}}}',
    "cookies as a string": b'{"statusCode":200,"cookies":"a=1"}',
    "a cookie that is not a string": b'{"statusCode":200,"cookies":[1]}',
    "base64 body that isn't": b'{"statusCode":200,"isBase64Encoded":true,"body":"not base64!"}',
    "deeply nested JSON": b"[" * 100_000 + b"]" * 100_000,
    "deeply nested body": b'{"statusCode":200,"body":' + b"[" * 5000 + b"]" * 5000 + b"}",
}


def test_malformed_results_are_502_with_one_log_line(url: str, server: Any) -> None:
    start = server.log.stat().st_size
    conn = Conn(server.port)
    ids = {}
    try:
        for case, result in MALFORMED.items():
            reply = conn.call(_path(url), result)
            assert reply.status == 502, (case, reply)
            assert reply.body == b"Internal Server Error", case
            assert reply.all("content-type") == ["text/plain"], case
            assert reply.framing() == ["content-length"], case
            ids[case] = reply.all("x-amzn-requestid")[0]
        after = conn.call(_path(url), _result(statusCode=200, body="still fine"))
        assert (after.status, after.body) == (200, b"still fine")
    finally:
        conn.close()
    with server.log.open("rb") as f:
        f.seek(start)
        log = f.read().decode("utf-8", "replace")
    assert "Traceback" not in log, log[-3000:]
    for case, request_id in ids.items():
        lines = [line for line in log.splitlines() if request_id in line]
        assert len(lines) == 1, (case, lines)
        assert "invalid response" in lines[0], (case, lines)


def test_well_formed_results_still_pass(url: str, conn: Conn) -> None:
    reply = conn.call(_path(url), _result(statusCode="201", headers={"x-n": 3, "x-b": True},
                                          cookies=["a=1; Path=/"], body="é"))  # fmt: skip
    assert reply.status == 201
    assert reply.all("x-n") == ["3"] and reply.all("x-b") == ["true"]
    assert reply.all("set-cookie") == ["a=1; Path=/"]
    assert reply.body == "é".encode()
    reply = conn.call(_path(url), _result(statusCode=200, isBase64Encoded=True, body="aGk="))
    assert reply.body == b"hi"
    head = conn.call(_path(url), _result(statusCode=200, body="12345"), method="HEAD")
    assert head.status == 200 and head.all("content-length") == ["5"]
    after = conn.call(_path(url), _result(statusCode=200, body="second"))
    assert (after.status, after.body) == (200, b"second")


def test_cors_values_no_header_can_carry_are_left_out(server: Any, conn: Conn) -> None:
    """The API's pattern for CORS values (``.*``) admits a control character or a non-latin-1
    value: the reply leaves that header out (it was a 500 and a traceback)."""
    client = lambda_client(server.url)
    name = "url-framing-cors"
    client.create_function(
        FunctionName=name, Runtime="python3.11", Role="arn:aws:iam::000000000000:role/r",
        Handler="app.handler", Code={"ZipFile": make_zip({"app.py": ECHO_RESULT})},
    )  # fmt: skip
    wait_active(client, name)
    cors = {"AllowOrigins": ["*"], "ExposeHeaders": ["x-\u20ac"], "AllowHeaders": ["a\x01b"]}
    url = client.create_function_url_config(FunctionName=name, AuthType="NONE", Cors=cors)
    client.add_permission(
        FunctionName=name, StatementId="public", Action="lambda:InvokeFunctionUrl",
        Principal="*", FunctionUrlAuthType="NONE",
    )  # fmt: skip
    start = server.log.stat().st_size
    path = _path(url["FunctionUrl"])
    body = _result(statusCode=200, body="ok")
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\norigin: http://o\r\n"
    head += f"content-type: application/octet-stream\r\ncontent-length: {len(body)}\r\n\r\n"
    conn.sock.sendall(head.encode() + body)
    reply = conn.reply()
    assert (reply.status, reply.body) == (200, b"ok"), reply
    assert reply.all("access-control-allow-origin") == ["*"]
    assert reply.all("access-control-expose-headers") == []
    pre = f"OPTIONS {path} HTTP/1.1\r\nhost: x\r\norigin: http://o\r\n"
    pre += "access-control-request-method: GET\r\ncontent-length: 0\r\n\r\n"
    conn.sock.sendall(pre.encode())
    reply = conn.reply()
    assert reply.status == 200 and reply.all("access-control-allow-headers") == [], reply
    assert "Traceback" not in server.log.read_bytes()[start:].decode("utf-8", "replace")


# -- routing ------------------------------------------------------------------------------------


def _host(url: str) -> str:
    return url.split("//")[1].rstrip("/")


def test_host_is_matched_case_insensitively(url: str, conn: Conn) -> None:
    conn.send("POST", "/", _result(statusCode=200, body="by host"), host=_host(url).upper())
    assert conn.reply().body == b"by host"


def test_host_in_another_region_is_not_the_url(url: str, conn: Conn) -> None:
    other = _host(url).replace(".us-east-1.", ".eu-west-1.")
    assert other != _host(url)
    conn.send("POST", "/", _result(statusCode=200, body="by host"), host=other)
    reply = conn.reply()
    assert reply.status == 403
    assert reply.all("x-amzn-errortype") == ["AccessDeniedException"]


def test_two_host_headers_are_refused(url: str, server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(f"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nhost: {_host(url)}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 "), data


def test_routing_uses_the_raw_path(url: str, conn: Conn) -> None:
    hidden = f"/%6cambda-url/{_id(url)}/"
    reply = conn.call(hidden, _result(statusCode=200, body="reached"), method="POST")
    assert reply.body != b"reached" and reply.status >= 400, reply
    reply = conn.call(f"{_path(url)}a%20b/%2F?q=1", method="GET")
    event = json.loads(reply.body)
    assert event["rawPath"] == "/a%20b/%2F"
    assert event["requestContext"]["http"]["path"] == "/a%20b/%2F"
    assert event["rawQueryString"] == "q=1"
