"""The Lambda REST API as one plain ASGI app: authenticate, match, parse, call, render.

Plain ASGI rather than Starlette routes: every Lambda call, Invoke included, goes through here, and
the framework's middleware and request objects cost more than the rest of a warm invoke's HTTP
handling (measured with py-spy under wrk).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping

from starlette.types import Receive, Scope, Send

from brazier.api import url_ops, version_ops  # noqa: F401 - they register their operations
from brazier.api.context import REQUEST_ID
from brazier.api.headers import RequestHeaders
from brazier.api.operations import HANDLERS, Services
from brazier.api.wire import Reply, ServiceWire
from brazier.control.commands import AuthorizeFunctionAccess
from brazier.model import ids
from brazier.model.errors import LambdaError, RequestEntityTooLargeException, ServiceException
from brazier.model.identity import Caller

log = logging.getLogger(__name__)

# Bodies past this are refused before they are read whole: a 50 MB zip, base64-encoded in JSON.
MAX_BODY = 70 * 1024 * 1024

# The IAM action of an operation, where it is not "lambda:<operation>".
_ACTIONS = {"Invoke": "lambda:InvokeFunction"}

# (method, raw path, raw query, headers, body) -> the caller; raises a LambdaError when refused.
Authenticator = Callable[[str, str, str, Mapping[str, str], bytes], Caller]


class LambdaApi:
    def __init__(self, services: Services, authenticate: Authenticator) -> None:
        self.services = services
        self.authenticate = authenticate
        self.wire = ServiceWire(frozenset(HANDLERS))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = ids.request_id()
        REQUEST_ID.set(request_id)
        try:
            reply = await self._handle(scope, receive)
        except LambdaError as exc:
            reply = error_reply(exc)
        except Exception:
            log.exception("unhandled error in request %s", request_id)
            reply = error_reply(
                ServiceException(f"An internal error occurred (request {request_id}).")
            )
        headers = [(b"x-amzn-requestid", request_id.encode())]
        headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in reply.headers.items()]
        if reply.content_type:
            headers.append((b"content-type", reply.content_type.encode()))
        headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def _handle(self, scope: Scope, receive: Receive) -> Reply:
        method = scope["method"]
        raw_path = scope["raw_path"].decode("latin-1")
        query = scope["query_string"].decode("latin-1")
        headers = RequestHeaders(scope["headers"])
        op, labels = self.wire.match(method, raw_path, query)
        body = await _read_body(headers, receive)
        caller = self.authenticate(method, raw_path, query, headers, body)
        params = self.wire.parse(op, labels, query, headers, body)
        caller = await self._authorize(op.name, caller, params)
        result = await HANDLERS[op.name](self.services, caller, params)
        return self.wire.render(op, result)

    async def _authorize(self, op: str, caller: Caller, params: Mapping[str, object]) -> Caller:
        """Whom the operation acts for: the caller, or the owner of another account's function
        that the caller names by ARN and whose resource policy grants it the operation."""
        function = params.get("FunctionName", params.get("Resource"))
        if not isinstance(function, str):
            return caller
        qualifier = params.get("Qualifier")
        return await self.services.resources.authorize(
            caller,
            AuthorizeFunctionAccess(
                function=function,
                qualifier=qualifier if isinstance(qualifier, str) else None,
                action=_ACTIONS.get(op, f"lambda:{op}"),
            ),
        )


def error_reply(exc: LambdaError) -> Reply:
    """The one place where errors become AWS-shaped HTTP responses."""
    headers = {"x-amzn-ErrorType": exc.code, **exc.headers}
    body = json.dumps(exc.body(), separators=(",", ":")).encode()
    return Reply(exc.status, headers, body, "application/json")


async def _read_body(headers: Mapping[str, str], receive: Receive) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise RequestEntityTooLargeException("Zipped size must be smaller than 52428800 bytes")
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > MAX_BODY:
            raise RequestEntityTooLargeException("Zipped size must be smaller than 52428800 bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


# Registers the layer operations into HANDLERS (kept in their own module).
import brazier.api.layer_ops  # noqa: E402, F401
