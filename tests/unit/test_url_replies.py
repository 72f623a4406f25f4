"""url_replies: every result a function can return becomes a well-formed reply or an invalid
response; the wire test (tests/invoke/test_url_framing.py) checks the same on a socket."""

from __future__ import annotations

import json
from typing import Any

import pytest

from brazier.api.url_replies import (
    DROPPED_HEADERS,
    InvalidFunctionResponse,
    UrlReply,
    from_result,
    wire_headers,
)


def _reply(**result: Any) -> UrlReply:
    return from_result(json.dumps(result).encode())


@pytest.mark.parametrize("name", [*sorted(DROPPED_HEADERS), "Proxy-Authorization",
                                  "X-Amzn-RequestId", "x-amzn-trace-id"])  # fmt: skip
def test_reserved_headers_are_dropped(name: str) -> None:
    reply = _reply(statusCode=200, headers={name: "v", "x-kept": "k"}, body="b")
    assert dict(reply.headers) == {"x-kept": "k", "content-type": "application/json"}


@pytest.mark.parametrize("status", [200, 201, 299, 301, 404, 500, 599, 200.0, "204"])
def test_final_statuses_are_accepted(status: Any) -> None:
    assert _reply(statusCode=status).status == int(status)


@pytest.mark.parametrize(
    "status", [100, 101, 199, 600, 99999, -1, 0, "abc", "2000", " 200", 200.5, True, None, [200]]
)
def test_other_statuses_are_invalid(status: Any) -> None:
    with pytest.raises(InvalidFunctionResponse):
        _reply(statusCode=status)


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_and_no_length_for_204_and_304(status: int) -> None:
    reply = _reply(statusCode=status, body="HTTP/1.1 200 OK\r\n\r\n")
    assert reply.body == b""
    names = [k for k, _ in wire_headers(reply, "rid")]
    assert b"content-length" not in names and b"transfer-encoding" not in names


def test_exactly_one_length_and_brazier_request_id() -> None:
    reply = _reply(statusCode=200, headers={"Content-Length": "1"}, body="hello")
    raw = wire_headers(reply, "rid", {"access-control-allow-origin": "*"})
    assert [v for k, v in raw if k == b"content-length"] == [b"5"]
    assert [v for k, v in raw if k == b"x-amzn-requestid"] == [b"rid"]
    assert (b"access-control-allow-origin", b"*") in raw


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": 200, "headers": {"a\r\nb": "1"}},
        {"statusCode": 200, "headers": {"a b": "1"}},
        {"statusCode": 200, "headers": {"": "1"}},
        {"statusCode": 200, "headers": {"a": "1\r\nb: 2"}},
        {"statusCode": 200, "headers": {"a": "1\x00"}},
        {"statusCode": 200, "headers": {"a": "€"}},
        {"statusCode": 200, "headers": {"a": None}},
        {"statusCode": 200, "headers": {"a": {"b": 1}}},
        {"statusCode": 200, "headers": {"a": ["1"]}},
        {"statusCode": 200, "headers": [["a", "b"]]},
        {"statusCode": 200, "headers": "a: b"},
        {"statusCode": 200, "cookies": "a=1"},
        {"statusCode": 200, "cookies": [1]},
        {"statusCode": 200, "cookies": ["a=1\r\nb: 2"]},
        {"statusCode": 200, "isBase64Encoded": True, "body": "not base64!"},
        {"statusCode": 200, "isBase64Encoded": "yes", "body": "aGk="},
    ],
)
def test_malformed_results_are_invalid(result: dict[str, Any]) -> None:
    with pytest.raises(InvalidFunctionResponse):
        from_result(json.dumps(result).encode())


def test_json_too_deep_is_invalid() -> None:
    with pytest.raises(InvalidFunctionResponse):
        from_result(b"[" * 100_000 + b"]" * 100_000)


def test_plain_results_as_lambda_maps_them() -> None:
    assert from_result(b'"hello"').body == b"hello"
    assert from_result(b"3").body == b"3"
    assert from_result(b'{"a": [1, 2]}').body == b'{"a":[1,2]}'
    assert from_result(b"not json").body == b"not json"
    assert from_result(b"").body == b"null"
    reply = _reply(statusCode=200, headers={"X-N": 3, "x-b": False}, cookies=["a=1"], body="é")
    assert dict(reply.headers)["x-n"] == "3" and dict(reply.headers)["x-b"] == "false"
    assert reply.cookies == ("a=1",) and reply.body == "é".encode()
    assert _reply(statusCode=200, isBase64Encoded=True, body="aGk=").body == b"hi"
