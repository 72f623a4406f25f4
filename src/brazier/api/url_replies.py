"""The HTTP reply of a function URL, built from the function's result (lambda-interfaces.md §6.1).

Brazier, not the function, owns the framing of the reply (decision 0014):

* the status must be a final HTTP status, 200-599; anything else is an invalid response;
* the function's hop-by-hop and framing headers (``Connection``, ``Keep-Alive``,
  ``Transfer-Encoding``, ``Content-Length``, ``Upgrade``, ``TE``, ``Trailer``, ``Proxy-*``), and
  the headers the server writes itself (``Server``, ``Date``, every ``x-amzn-*``) are dropped;
* exactly one ``content-length`` is written, by brazier; 204 and 304 carry neither body nor
  length;
* a result that can't be rendered as a well-formed reply (a control character in a header name,
  value or cookie, a header value outside latin-1, a status that isn't a number, headers that
  aren't an object, cookies that aren't a list of strings, a body marked base64 that isn't,
  JSON too deep to read) is an invalid response: 502 ``Internal Server Error``, as Lambda answers.

Only this module turns a result into wire headers; ``function_urls`` sends what it returns.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from starlette.types import Send

# Lambda answers an invalid function response, an error or a timeout with this reply.
BAD_GATEWAY_BODY: Final = b"Internal Server Error"
# A status a function URL may answer with: final statuses only (a 1xx is not a reply).
STATUS_RANGE: Final = range(200, 600)
NO_BODY_STATUSES: Final = frozenset({204, 304})
# Hop-by-hop and framing headers (RFC 9110 §7.6.1, RFC 9112 §6), and headers the server writes.
DROPPED_HEADERS: Final = frozenset({
    "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te",
    "trailer", "server", "date",
})  # fmt: skip
DROPPED_PREFIXES: Final = ("proxy-", "x-amzn-")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # controls other than HTAB
_STATUS_TEXT = re.compile(r"[0-9]{3}")


class InvalidFunctionResponse(Exception):
    """The function's result can't be a function URL reply. The reason is brazier's own text,
    never the function's bytes, so it is safe to log."""


@dataclass(frozen=True, slots=True)
class UrlReply:
    status: int
    headers: tuple[tuple[str, str], ...]  # lowercase names, validated values
    cookies: tuple[str, ...] = ()
    body: bytes = b""


def bad_gateway() -> UrlReply:
    return UrlReply(502, (("content-type", "text/plain"),), body=BAD_GATEWAY_BODY)


def from_result(payload: bytes) -> UrlReply:
    """The reply Lambda makes of a function's result; raises ``InvalidFunctionResponse``."""
    try:
        return _from_result(payload)
    except RecursionError:
        raise InvalidFunctionResponse("the result is nested too deeply to read") from None


def _from_result(payload: bytes) -> UrlReply:
    json_type = (("content-type", "application/json"),)
    try:
        result = json.loads(payload) if payload else None
    except ValueError:
        return UrlReply(200, json_type, body=payload)
    if isinstance(result, dict) and "statusCode" in result:
        return _mapped(result)
    if isinstance(result, str):
        return UrlReply(200, json_type, body=result.encode())
    return UrlReply(200, json_type, body=json.dumps(result, separators=(",", ":")).encode())


def _mapped(result: Mapping[str, Any]) -> UrlReply:
    status = _status(result["statusCode"])
    headers = dict(_headers(result.get("headers")))
    headers.setdefault("content-type", "application/json")
    cookies = _cookies(result.get("cookies"))
    body = b"" if status in NO_BODY_STATUSES else _body(result)
    return UrlReply(status, tuple(headers.items()), cookies, body)


def _status(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidFunctionResponse("statusCode is not a number")
    integral = isinstance(value, float) and math.isfinite(value) and value.is_integer()
    if integral or (isinstance(value, str) and _STATUS_TEXT.fullmatch(value)):
        value = int(value)
    if not isinstance(value, int):
        raise InvalidFunctionResponse("statusCode is not an integer")
    if value not in STATUS_RANGE:
        raise InvalidFunctionResponse("statusCode is outside 200-599")
    return value


def _headers(value: Any) -> Iterable[tuple[str, str]]:
    if value is None:
        return
    if not isinstance(value, dict):
        raise InvalidFunctionResponse("headers is not an object")
    for name, raw in value.items():
        if not _TOKEN.fullmatch(name):
            raise InvalidFunctionResponse("a header name is not an HTTP token")
        lower = name.lower()
        text = _header_value(raw)
        if lower in DROPPED_HEADERS or lower.startswith(DROPPED_PREFIXES):
            continue
        yield lower, text


def _header_value(value: Any) -> str:
    if isinstance(value, bool | int | float) and not (
        isinstance(value, float) and not math.isfinite(value)
    ):
        value = json.dumps(value)
    if not isinstance(value, str):
        raise InvalidFunctionResponse("a header value is not a string")
    return _field_text(value, "a header value")


def _field_text(value: str, what: str) -> str:
    if _BAD_VALUE.search(value):
        raise InvalidFunctionResponse(f"{what} holds a control character")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidFunctionResponse(f"{what} is not latin-1") from None
    return value


def _is_field_text(value: str) -> bool:
    try:
        _field_text(value, "")
    except InvalidFunctionResponse:
        return False
    return True


def _cookies(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise InvalidFunctionResponse("cookies is not a list of strings")
    return tuple(_field_text(c, "a cookie") for c in value)


def _body(result: Mapping[str, Any]) -> bytes:
    body = result.get("body")
    encoded = result.get("isBase64Encoded")
    if encoded is not None and not isinstance(encoded, bool):
        raise InvalidFunctionResponse("isBase64Encoded is not a boolean")
    if body is None:
        return b""
    if not isinstance(body, str):
        return json.dumps(body).encode()
    if not encoded:
        return body.encode()
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidFunctionResponse("body is marked base64 but is not base64") from None


def wire_headers(
    reply: UrlReply, request_id: str, extra: Mapping[str, str] | None = None
) -> list[tuple[bytes, bytes]]:
    """The reply's headers as sent: brazier's ``x-amzn-RequestId`` and one framing header."""
    headers = dict(reply.headers)
    # Brazier's own headers come from configuration (CORS), whose API pattern (``.*``) admits
    # values no header can carry; such a header is left out rather than failing the reply.
    headers.update((k, v) for k, v in (extra or {}).items() if _is_field_text(v))
    raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]
    raw += [(b"set-cookie", c.encode("latin-1")) for c in reply.cookies]
    raw.append((b"x-amzn-requestid", request_id.encode()))
    if reply.status not in NO_BODY_STATUSES:
        raw.append((b"content-length", str(len(reply.body)).encode()))
    return raw


async def send_reply(
    send: Send, reply: UrlReply, request_id: str, extra: Mapping[str, str] | None = None
) -> None:
    """Send the reply on an ASGI connection; ``extra`` (brazier's own, e.g. CORS) wins."""
    await send({
        "type": "http.response.start", "status": reply.status,
        "headers": wire_headers(reply, request_id, extra),
    })  # fmt: skip
    body = b"" if reply.status in NO_BODY_STATUSES else reply.body
    await send({"type": "http.response.body", "body": body})
