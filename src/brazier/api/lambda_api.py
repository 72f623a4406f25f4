"""The Lambda REST API as one plain ASGI app: authenticate, match, parse, call, render.

Plain ASGI rather than Starlette routes: every Lambda call, Invoke included, goes through here, and
the framework's middleware and request objects cost more than the rest of a warm invoke's HTTP
handling (measured with py-spy under wrk).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from contextlib import closing, nullcontext
from pathlib import Path
from typing import Any

from starlette.types import Receive, Scope, Send

from brazier.api import limits, small_ops, url_ops, version_ops  # noqa: F401 - registering
from brazier.api.body import ClientGone, Spooled, needs_early_auth, read_body_spooled
from brazier.api.code_body import placeholder, split_zip
from brazier.api.context import REQUEST_ID
from brazier.api.headers import RequestHeaders
from brazier.api.operations import HANDLERS, Services
from brazier.api.sigv4 import PayloadDigest
from brazier.api.wire import Operation, Reply, ServiceWire
from brazier.control.commands import AuthorizeFunctionAccess
from brazier.model import ids
from brazier.model.errors import LambdaError, ServiceException
from brazier.model.identity import Caller

log = logging.getLogger(__name__)

# The IAM action of an operation, where it is not "lambda:<operation>".
_ACTIONS = {"Invoke": "lambda:InvokeFunction"}

# (method, raw path, raw query, headers, body) -> the caller; raises a LambdaError when refused.
# A body of None asks for what can be checked before the body is read (see auth.py); the
# request is then authenticated again, with its body.
Authenticator = Callable[[str, str, str, Mapping[str, str], bytes | PayloadDigest | None], Caller]


# Where each code upload's ZipFile member is ("" for the top level).
_ZIP_MEMBER = {"CreateFunction": "Code", "UpdateFunctionCode": "", "PublishLayerVersion": "Content"}


class LambdaApi:
    def __init__(
        self, services: Services, authenticate: Authenticator, spool_dir: Path | None = None
    ) -> None:
        self.services = services
        self.authenticate = authenticate
        self.spool_dir = spool_dir
        self._code_uploads = asyncio.Semaphore(limits.CONCURRENT_CODE_UPLOADS)
        self.wire = ServiceWire(frozenset(HANDLERS))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = ids.request_id()
        REQUEST_ID.set(request_id)
        try:
            reply = await self._handle(scope, receive)
        except ClientGone:
            return
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
        limit = limits.request_limit(op.name)
        if needs_early_auth(headers):
            self.authenticate(method, raw_path, query, headers, None)
        body = await read_body_spooled(
            receive,
            headers,
            limit,
            spool_dir=self.spool_dir,
            refuse=lambda: limits.too_large(op.name, limit),
        )
        if isinstance(body, Spooled):
            with closing(body):
                caller = self.authenticate(
                    method, raw_path, query, headers, PayloadDigest(body.sha256)
                )
                # A decoded zip is up to 50 MB: a few at a time, however many arrive.
                gate = self._code_uploads if op.name in _ZIP_MEMBER else nullcontext()
                async with gate:
                    # Scanning and decoding ~70 MB takes a while: off the event loop.
                    params = await asyncio.to_thread(
                        self._parse_spooled, op, labels, query, headers, body
                    )
                    body.close()
                    return await self._call(op, caller, params)
        caller = self.authenticate(method, raw_path, query, headers, body)
        params = self.wire.parse(op, labels, query, headers, body)
        return await self._call(op, caller, params)

    async def _call(self, op: Operation, caller: Caller, params: dict[str, Any]) -> Reply:
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

    def _parse_spooled(
        self,
        op: Operation,
        labels: Mapping[str, str],
        query: str,
        headers: Mapping[str, str],
        body: Spooled,
    ) -> dict[str, Any]:
        """A large body's input: a code upload's zip decoded straight from the spool file (see
        code_body.py), anything else read back and parsed as usual."""
        where = _ZIP_MEMBER.get(op.name)
        if where is not None:
            marker, marker_bytes = placeholder()
            split = split_zip(body.file, body.size, marker)
            if split is not None:
                rest, zipped = split
                params = self.wire.parse(op, labels, query, headers, rest)
                holder = params.get(where) if where else params
                if isinstance(holder, dict) and holder.get("ZipFile") == marker_bytes:
                    holder["ZipFile"] = zipped
                    return params
        return self.wire.parse(op, labels, query, headers, body.read())


def error_reply(exc: LambdaError) -> Reply:
    """The one place where errors become AWS-shaped HTTP responses."""
    headers = {"x-amzn-ErrorType": exc.code, **exc.headers}
    body = json.dumps(exc.body(), separators=(",", ":")).encode()
    return Reply(exc.status, headers, body, "application/json")


# Registers the layer operations into HANDLERS (kept in their own module).
import brazier.api.layer_ops  # noqa: E402, F401
