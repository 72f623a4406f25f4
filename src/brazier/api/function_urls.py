"""Function URLs at the HTTP edge: requests become payload-2.0 events, results become responses.

A URL is reached as ``http://<url-id>.lambda-url.<region>.localhost:<port>/...`` (Host header) or
``http://127.0.0.1:<port>/lambda-url/<url-id>/...``. Reference: lambda-interfaces.md §6.1.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from brazier.control.urls import UrlService, UrlTarget
from brazier.invoke.service import InvokeCommand, InvokeService
from brazier.model import jsondoc
from brazier.model.errors import AccessDeniedException, LambdaError, TooManyRequestsException
from brazier.model.identity import Caller

HOST = re.compile(r"^([a-z0-9]{32})\.lambda-url\.[a-z0-9-]+\.localhost(?::\d+)?$")
PATH = re.compile(r"^/lambda-url/([a-z0-9]{32})(/.*)?$")
_TEXTUAL = re.compile(r"^text/|json|xml|javascript|x-www-form-urlencoded", re.I)
MAX_BODY = 6 * 1024 * 1024

# (method, raw path, raw query, headers, body) -> the signer's account; raises when refused.
IamCheck = Callable[[str, str, str, Mapping[str, str], bytes], Caller]


def match(scope: Scope) -> tuple[str, str] | None:
    """(url id, path within the URL) when the request is for a function URL."""
    host = Headers(scope=scope).get("host", "")
    m = HOST.match(host)
    if m:
        return m.group(1), scope["path"]
    m = PATH.match(scope["path"])
    if m:
        return m.group(1), m.group(2) or "/"
    return None


class FunctionUrlApp:
    def __init__(self, urls: UrlService, invoke: InvokeService, iam: IamCheck) -> None:
        self.urls = urls
        self.invoke = invoke
        self.iam = iam

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, url_id: str, path: str
    ) -> None:
        headers = Headers(scope=scope)
        body = await _body(receive)
        target = await self.urls.find(url_id)
        if target is None:
            await _send(
                send, 403, {"x-amzn-ErrorType": "AccessDeniedException"}, b'{"Message":null}'
            )
            return
        cors = target.config.get("Cors") or {}
        origin = headers.get("origin")
        if scope["method"] == "OPTIONS" and origin and "access-control-request-method" in headers:
            await _send(send, 200, _preflight(cors, origin, headers), b"")
            return
        try:
            caller = await self._authorize(scope, headers, body, target)
        except LambdaError as exc:
            await _send(send, 403, {"x-amzn-ErrorType": exc.code}, b'{"Message":"Forbidden"}')
            return
        event = _event(scope, headers, body, path, url_id, target, caller)
        try:
            reply = await self.invoke.invoke(
                Caller(target.account, target.region),
                InvokeCommand(
                    function=target.function,
                    qualifier=target.qualifier or None,
                    invocation_type="RequestResponse",
                    log_type="None",
                    payload=json.dumps(event).encode(),
                ),
            )
        except TooManyRequestsException:
            await _send(
                send, 429, {"content-type": "application/json"}, b'{"Message":"Rate Exceeded."}'
            )
            return
        except LambdaError as exc:  # e.g. a body that makes the event pass Invoke's 6 MB
            kind = {"content-type": "application/json", "x-amzn-ErrorType": exc.code}
            await _send(send, exc.status, kind, json.dumps({"Message": exc.message}).encode())
            return
        if reply.function_error:
            await _send(send, 502, {"content-type": "text/plain"}, b"Internal Server Error")
            return
        status, out_headers, cookies, out_body = _response(reply.payload)
        out_headers.update(_cors_headers(cors, origin))
        await _send(send, status, out_headers, out_body, cookies)

    async def _authorize(
        self, scope: Scope, headers: Headers, body: bytes, target: UrlTarget
    ) -> Caller | None:
        if target.config.get("AuthType") == "AWS_IAM":
            raw_path = scope["raw_path"].decode("latin-1")
            query = scope["query_string"].decode("latin-1")
            return self.iam(scope["method"], raw_path, query, headers, body)
        if not await self.urls.public_access_allowed(target):
            raise AccessDeniedException("Forbidden")
        return None


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY:
            chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _joined(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in pairs:
        out[k] = f"{out[k]},{v}" if k in out else v
    return out


def _event(
    scope: Scope,
    headers: Headers,
    body: bytes,
    path: str,
    url_id: str,
    target: UrlTarget,
    caller: Caller | None,
) -> dict[str, Any]:
    """The payload-format-2.0 event Lambda builds for a function URL request."""
    raw_query = scope["query_string"].decode("latin-1")
    pairs = [(k.lower(), v) for k, v in headers.items()]
    cookies = [c.strip() for k, v in pairs if k == "cookie" for c in v.split(";") if c.strip()]
    header_map = _joined([(k, v) for k, v in pairs if k != "cookie"])
    host = headers.get("host", f"{url_id}.lambda-url.{target.region}.localhost")
    now = time.time()
    client = scope.get("client") or ("127.0.0.1", 0)
    http = {
        "method": scope["method"],
        "path": unquote(path),
        "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
        "sourceIp": client[0],
        "userAgent": headers.get("user-agent", ""),
    }
    context: dict[str, Any] = {
        "accountId": caller.account if caller else "anonymous",
        "apiId": url_id,
        "domainName": host.split(":")[0],
        "domainPrefix": url_id,
        "http": http,
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if caller is not None:
        context["authorizer"] = {"iam": {
            "accessKey": headers.get("authorization", "").partition("Credential=")[2].split("/")[0],
            "accountId": caller.account, "callerId": caller.account, "cognitoIdentity": None,
            "principalOrgId": None, "userArn": f"arn:aws:iam::{caller.account}:root",
            "userId": caller.account,
        }}  # fmt: skip
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": context,
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        event["queryStringParameters"] = _joined(parse_qsl(raw_query, keep_blank_values=True))
    if body:
        textual = _TEXTUAL.search(headers.get("content-type", "")) is not None
        event["body"] = (
            body.decode("utf-8", "replace") if textual else base64.b64encode(body).decode()
        )
        event["isBase64Encoded"] = not textual
    return event


def _response(payload: bytes) -> tuple[int, dict[str, str], list[str], bytes]:
    """Map the function's result to (status, headers, cookies, body) as Lambda does."""
    try:
        result = jsondoc.loads(payload) if payload else None
    except ValueError:
        return 200, {"content-type": "application/json"}, [], payload
    if isinstance(result, dict) and "statusCode" in result:
        headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
        headers.setdefault("content-type", "application/json")
        body = result.get("body")
        if body is None:
            raw = b""
        elif isinstance(body, str):
            raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        else:
            raw = json.dumps(body).encode()
        return (
            int(result["statusCode"]),
            headers,
            [str(c) for c in result.get("cookies") or []],
            raw,
        )
    if isinstance(result, str):
        return 200, {"content-type": "application/json"}, [], result.encode()
    return (
        200,
        {"content-type": "application/json"},
        [],
        json.dumps(result, separators=(",", ":")).encode(),
    )


def _allowed_origin(cors: Mapping[str, Any], origin: str | None) -> str | None:
    if not origin:
        return None
    allowed = cors.get("AllowOrigins") or []
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


def _cors_headers(cors: Mapping[str, Any], origin: str | None) -> dict[str, str]:
    allowed = _allowed_origin(cors, origin)
    if allowed is None:
        return {}
    out = {"access-control-allow-origin": allowed}
    if cors.get("ExposeHeaders"):
        out["access-control-expose-headers"] = ",".join(cors["ExposeHeaders"])
    if cors.get("AllowCredentials"):
        out["access-control-allow-credentials"] = "true"
    return out


def _preflight(cors: Mapping[str, Any], origin: str, headers: Headers) -> dict[str, str]:
    out = _cors_headers(cors, origin)
    if not out:
        return {}
    out["access-control-allow-methods"] = ",".join(cors.get("AllowMethods") or ["*"])
    if cors.get("AllowHeaders"):
        out["access-control-allow-headers"] = ",".join(cors["AllowHeaders"])
    if cors.get("MaxAge") is not None:
        out["access-control-max-age"] = str(cors["MaxAge"])
    return out


async def _send(
    send: Send,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    cookies: list[str] | None = None,
) -> None:
    raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]
    raw += [(b"set-cookie", c.encode("latin-1")) for c in cookies or []]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
