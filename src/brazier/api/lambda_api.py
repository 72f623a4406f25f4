"""The Lambda REST API as a single ASGI endpoint: authenticate, match, parse, call, render."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from brazier.api.errors import error_response, unexpected_response
from brazier.api.operations import HANDLERS, Services
from brazier.api.wire import ServiceWire
from brazier.model.errors import LambdaError, RequestEntityTooLargeException
from brazier.model.identity import Caller

# Bodies past this are refused before they are read whole: a 50 MB zip, base64-encoded in JSON.
MAX_BODY = 70 * 1024 * 1024

Authenticator = Callable[[Request, bytes], Caller]


class LambdaApi:
    def __init__(self, services: Services, authenticate: Authenticator) -> None:
        self.services = services
        self.authenticate = authenticate
        self.wire = ServiceWire(frozenset(HANDLERS))

    async def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            op, labels = self.wire.match(
                request.method, request.scope["raw_path"].decode("latin-1"), request.url.query
            )
            body = await _read_body(request)
            caller = self.authenticate(request, body)
            params = self.wire.parse(op, labels, request.url.query, request.headers, body)
            result = await HANDLERS[op.name](self.services, caller, params)
            reply = self.wire.render(op, result)
        except LambdaError as exc:
            return error_response(exc, request_id)
        except Exception as exc:
            return unexpected_response(exc, request_id)
        headers = {"x-amzn-RequestId": request_id, **reply.headers}
        return Response(
            reply.body, status_code=reply.status, headers=headers, media_type=reply.content_type
        )


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise RequestEntityTooLargeException("Zipped size must be smaller than 52428800 bytes")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY:
            raise RequestEntityTooLargeException("Zipped size must be smaller than 52428800 bytes")
        chunks.append(chunk)
    return b"".join(chunks)
