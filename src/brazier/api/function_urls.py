"""Function URLs at the HTTP edge: requests become payload-2.0 events, results become responses.

A URL is reached as ``http://<url-id>.lambda-url.<region>.localhost:<port>/...`` (Host header,
matched case-insensitively; the region must be the URL's) or
``http://127.0.0.1:<port>/lambda-url/<url-id>/...``. Routing looks at the raw path as sent, never a
decoded one, so ``/%6cambda-url/<id>/`` is not a URL; ``rawPath`` is that raw path too.
Replies are built by ``url_replies``. Reference: lambda-interfaces.md §6.1.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from brazier.api import limits
from brazier.api.body import BodyTooLarge, ClientGone, read_body
from brazier.api.url_replies import (
    InvalidFunctionResponse,
    UrlReply,
    bad_gateway,
    from_result,
    send_reply,
)
from brazier.control.urls import UrlService, UrlTarget
from brazier.invoke.service import InvokeCommand, InvokeService
from brazier.model.errors import AccessDeniedException, LambdaError, TooManyRequestsException
from brazier.model.identity import Caller

HOST = re.compile(r"([a-z0-9]{32})\.lambda-url\.([a-z0-9-]+)\.localhost(?::[0-9]+)?")
PATH = re.compile(r"/lambda-url/([a-z0-9]{32})(/.*)?", re.S)
_TEXTUAL = re.compile(r"^text/|json|xml|javascript|x-www-form-urlencoded", re.I)
# Lambda's refusal of a URL request the policy does not allow (recorded:
# test_lambda_permission_url_invocation).
FORBIDDEN = (
    b'{"Message":"Forbidden. For troubleshooting Function URL authorization issues, see:'
    b' https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"}'
)

log = logging.getLogger(__name__)

_JSON = ("content-type", "application/json")
_UNKNOWN_URL = UrlReply(403, (_JSON, ("x-amzn-errortype", "AccessDeniedException")),
                       body=b'{"Message":null}')  # fmt: skip
_THROTTLED = UrlReply(429, (_JSON,), body=b'{"Message":"Rate Exceeded."}')


def _forbidden(code: str) -> UrlReply:
    return UrlReply(403, (_JSON, ("x-amzn-errortype", code)), body=FORBIDDEN)


# (method, raw path, raw query, headers, body) -> the signer's account; raises when refused.
IamCheck = Callable[[str, str, str, Mapping[str, str], bytes], Caller]


class Route(NamedTuple):
    url_id: str
    path: str  # the raw path within the URL, as sent (percent-encoding kept)
    region: str | None  # the region named by the Host form; None for the path form


def match(scope: Scope) -> Route | None:
    """The function URL a request is for, if any: by Host, else by the raw path."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    path = raw_path.decode("latin-1").partition("?")[0]
    host = Headers(scope=scope).get("host", "").lower()
    m = HOST.fullmatch(host)
    if m:
        return Route(m.group(1), path, m.group(2))
    m = PATH.fullmatch(path)
    if m:
        return Route(m.group(1), m.group(2) or "/", None)
    return None


class FunctionUrlApp:
    def __init__(
        self, urls: UrlService, invoke: InvokeService, iam: IamCheck, spool_dir: Path | None = None
    ) -> None:
        self.urls = urls
        self.invoke = invoke
        self.iam = iam
        self.spool_dir = spool_dir

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        url_id: str,
        path: str,
        region: str | None = None,
    ) -> None:
        headers = Headers(scope=scope)
        request_id = str(uuid.uuid4())
        body = await _body(receive, send, headers, self.spool_dir, request_id)
        if body is None:
            return
        target = await self.urls.find(url_id)
        if target is None or region not in (None, target.region):
            await send_reply(send, _UNKNOWN_URL, request_id)
            return
        cors = target.config.get("Cors") or {}
        origin = headers.get("origin")
        if scope["method"] == "OPTIONS" and origin and "access-control-request-method" in headers:
            await send_reply(send, UrlReply(200, ()), request_id, _preflight(cors, origin, headers))
            return
        try:
            caller = await self._authorize(scope, headers, body, target)
        except LambdaError as exc:
            await send_reply(send, _forbidden(exc.code), request_id)
            return
        event = _event(scope, headers, body, path, url_id, target, caller, request_id)
        reply = await self._invoke(target, event, request_id)
        await send_reply(send, reply, request_id, _cors_headers(cors, origin))

    async def _invoke(self, target: UrlTarget, event: dict[str, Any], request_id: str) -> UrlReply:
        """The reply for the function's result; one log line, no traceback, when it has none."""
        try:
            result = await self.invoke.invoke(
                Caller(target.account, target.region),
                InvokeCommand(
                    function=target.function,
                    qualifier=target.qualifier or None,
                    invocation_type="RequestResponse",
                    log_type="None",
                    payload=json.dumps(event).encode(),
                    request_id=request_id,
                ),
            )
        except TooManyRequestsException:
            return _THROTTLED
        except LambdaError as exc:
            if 400 <= exc.status < 500:  # e.g. a body that makes the event pass Invoke's 6 MB
                return UrlReply(
                    exc.status,
                    (_JSON, ("x-amzn-errortype", exc.code)),
                    body=json.dumps({"Message": exc.message}).encode(),
                )
            log.warning("function URL request %s to %s failed: %s", request_id,
                        target.function_arn, exc.code)  # fmt: skip
            return bad_gateway()
        if result.function_error:
            return bad_gateway()
        try:
            return from_result(result.payload)
        except InvalidFunctionResponse as exc:
            log.warning("function URL request %s: invalid response from %s: %s", request_id,
                        target.function_arn, exc)  # fmt: skip
            return bad_gateway()

    async def _authorize(
        self, scope: Scope, headers: Headers, body: bytes, target: UrlTarget
    ) -> Caller | None:
        if target.config.get("AuthType") == "AWS_IAM":
            raw_path = scope["raw_path"].decode("latin-1")
            query = scope["query_string"].decode("latin-1")
            signer = self.iam(scope["method"], raw_path, query, headers, body)
            if not await self.urls.iam_access_allowed(target, signer):
                raise AccessDeniedException("Forbidden")
            return signer
        if not await self.urls.public_access_allowed(target):
            raise AccessDeniedException("Forbidden")
        return None


async def _body(
    receive: Receive, send: Send, headers: Headers, spool_dir: Path | None, request_id: str
) -> bytes | None:
    """The request's body; None when it was refused here (too large) or the client left."""
    try:
        return await read_body(receive, headers, limits.FUNCTION_URL_REQUEST, spool_dir=spool_dir)
    except ClientGone:
        return None
    except BodyTooLarge:
        # Brazier's answer (AWS's is not recorded): the Invoke API's error, as a URL's JSON.
        message = limits.too_large("Invoke", limits.FUNCTION_URL_REQUEST).message
        reply = UrlReply(
            413,
            (_JSON, ("x-amzn-errortype", "RequestEntityTooLargeException")),
            body=json.dumps({"Message": message}).encode(),
        )
        await send_reply(send, reply, request_id)
        return None


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
    request_id: str,
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
        "path": path,
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
        "requestId": request_id,
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
