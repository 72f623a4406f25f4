"""Runtime API 2018-06-01 endpoints and the body consumers behind them.

Each endpoint runs when a request head is complete and returns the object that consumes the
body. Validation happens in RIE's order, before any body byte is kept: request id (400
``InvalidRequestID``), then the state machine (403 ``InvalidStateTransition``), then the
response mode (400 ``InvalidFunctionResponseMode``). Bodies are counted as they stream in and
never buffered past :data:`wire.MAX_PAYLOAD_SIZE`.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from brazier.model import jsondoc
from brazier.runtime_api import wire
from brazier.runtime_api.base import (
    FunctionError,
    FunctionResponse,
    InitError,
    normalize_error_type,
)
from brazier.runtime_api.connection import BodyConsumer, Exchange, RequestHead
from brazier.runtime_api.routes import Router
from brazier.runtime_api.states import RuntimeEvent, TransitionRefused

if TYPE_CHECKING:
    from brazier.runtime_api.server import RuntimeSession

__all__ = ["RUNTIME_ROUTES", "Reject"]

V1 = "/2018-06-01/runtime"


class Reject:
    """Discards the body, then sends a pre-rendered reply."""

    __slots__ = ("_ex", "_reply")

    def __init__(self, ex: Exchange, reply: bytes) -> None:
        self._ex = ex
        self._reply = reply

    def on_data(self, data: bytes) -> None:
        pass

    def on_trailer(self, name: str, value: str) -> None:
        pass

    def on_complete(self) -> None:
        self._ex.reply(self._reply)

    def on_truncated(self) -> None:
        self._ex.reply(self._reply)


class _Upload:
    """Collects a body of at most ``limit`` bytes; past that it only counts."""

    __slots__ = ("_chunks", "_ex", "_limit", "_size", "headers", "over", "trailers")

    def __init__(self, ex: Exchange, head: RequestHead, limit: int) -> None:
        self._ex = ex
        self._chunks: list[bytes] = []
        self._size = 0
        self._limit = limit
        self.headers = head.headers
        self.trailers: dict[str, str] | None = None
        self.over = False

    def on_data(self, data: bytes) -> None:
        self._size += len(data)
        if self.over:
            return
        if self._size > self._limit:
            self.over = True
            self._chunks = []
            self.on_oversize()
        else:
            self._chunks.append(data)

    def on_trailer(self, name: str, value: str) -> None:
        if self.trailers is None:
            self.trailers = {}
        self.trailers[name] = value

    def body(self) -> bytes:
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def on_oversize(self) -> None:
        """Hook: the limit was just exceeded (the rest of the body is discarded)."""


class _ResultUpload(_Upload):
    """The body of ``/response`` or ``/error`` for the current invoke."""

    __slots__ = ("_error", "_session")

    def __init__(
        self, session: RuntimeSession, ex: Exchange, head: RequestHead, *, error: bool, limit: int
    ) -> None:
        super().__init__(ex, head, limit)
        self._session = session
        self._error = error

    def on_oversize(self) -> None:
        # The invoker learns at once; the runtime gets its 413 when its upload ends.
        self._session._complete(
            FunctionError(wire.RESPONSE_TOO_LARGE_RESULT, "Function.ResponseSizeTooLarge")
        )

    def on_complete(self) -> None:
        if self.over:
            self._ex.reply(wire.TOO_LARGE)
            return
        content_type = self.headers.get(wire.H_CONTENT_TYPE)
        trailers = self.trailers
        if self._error:
            header = self.headers.get(wire.H_ERROR_TYPE)
            result: FunctionResponse | FunctionError = FunctionError(
                self.body(), normalize_error_type(header), header, content_type
            )
        elif trailers is not None and wire.H_ERROR_TYPE in trailers:
            # A streamed response that failed mid-way (§1.3): the trailers carry the error.
            result = _trailer_error(trailers, self._session.current_request_id)
        else:
            result = FunctionResponse(self.body(), content_type)
        self._session._complete(result)
        # A runtime that already asked for its next event cannot use the 202 before that event:
        # it goes out with it.
        self._ex.reply(wire.ACCEPTED, may_wait=True)

    def on_truncated(self) -> None:
        if not self.over:
            request_id = self._session.current_request_id
            self._session._complete(
                FunctionError(wire.truncated_result(request_id), "Runtime.TruncatedResponse")
            )
        self._ex.reply(wire.TRUNCATED)


def _trailer_error(trailers: dict[str, str], request_id: str) -> FunctionError:
    header = trailers[wire.H_ERROR_TYPE]
    error_type = normalize_error_type(header)
    try:
        body = base64.b64decode(trailers.get(wire.H_ERROR_BODY, ""), validate=True)
    except (binascii.Error, ValueError):
        # RIE keeps the runtime's error type and drops the details; the invoker still gets an
        # error payload saying what happened rather than an empty one.
        return FunctionError(
            wire.undecodable_error_body_result(request_id, error_type), error_type, header
        )
    if not body:
        return FunctionError(
            wire.missing_error_body_result(request_id, error_type), error_type, header
        )
    return FunctionError(body, error_type, header, wire.JSON)


class _InitErrorUpload(_Upload):
    __slots__ = ("_session",)

    def __init__(self, session: RuntimeSession, ex: Exchange, head: RequestHead) -> None:
        super().__init__(ex, head, session.max_payload_size)
        self._session = session

    def _error(self, body: bytes) -> InitError:
        header = self.headers.get(wire.H_ERROR_TYPE)
        content_type = self.headers.get(wire.H_CONTENT_TYPE) or _json_or_octets(body)
        return InitError(body, normalize_error_type(header), header, content_type)

    def on_complete(self) -> None:
        self._session._init_failed(self._error(b"" if self.over else self.body()))
        self._ex.reply(wire.TOO_LARGE if self.over else wire.ACCEPTED)

    def on_truncated(self) -> None:
        self._session._init_failed(self._error(b""))
        self._ex.reply(wire.TRUNCATED)


def _json_or_octets(body: bytes) -> str:
    # RIE's determineJSONContentType; cold path (once per failed init).
    try:
        jsondoc.loads(body)
    except ValueError:
        return "application/octet-stream"
    return wire.JSON


class _NextRequest:
    __slots__ = ("_ex", "_session")

    def __init__(self, session: RuntimeSession, ex: Exchange) -> None:
        self._session = session
        self._ex = ex

    def on_data(self, data: bytes) -> None:
        pass

    def on_trailer(self, name: str, value: str) -> None:
        pass

    def on_complete(self) -> None:
        self._session._on_next(self._ex)

    def on_truncated(self) -> None:
        pass


# --- endpoints ----------------------------------------------------------------------------------
def _next(session: RuntimeSession, ex: Exchange, head: RequestHead, _: str) -> BodyConsumer:
    return _NextRequest(session, ex)


def _result(
    session: RuntimeSession, ex: Exchange, head: RequestHead, request_id: str, *, error: bool
) -> BodyConsumer:
    if request_id != session.current_request_id:
        return Reject(ex, wire.INVALID_REQUEST_ID)
    try:
        session._transition(RuntimeEvent.ERROR if error else RuntimeEvent.RESPONSE)
    except TransitionRefused as refused:
        return Reject(ex, wire.forbidden(refused.message))
    mode = None if error else head.headers.get(wire.H_RESPONSE_MODE)
    if mode is not None and mode != wire.RESPONSE_MODE_STREAMING:
        session._complete(
            FunctionError(wire.invalid_mode_result(request_id), "Runtime.InvalidResponseModeHeader")
        )
        return Reject(ex, wire.INVALID_RESPONSE_MODE)
    # Streamed responses are not capped at 6 MB on AWS; until they are relayed chunk by chunk
    # (a consumer resolving invoke() at head time with an async iterator, reading paused for
    # backpressure) they are buffered up to a separate, larger cap.
    limit = session.max_streamed_size if mode is not None else session.max_payload_size
    return _ResultUpload(session, ex, head, error=error, limit=limit)


def _response(session: RuntimeSession, ex: Exchange, head: RequestHead, rid: str) -> BodyConsumer:
    return _result(session, ex, head, rid, error=False)


def _error(session: RuntimeSession, ex: Exchange, head: RequestHead, rid: str) -> BodyConsumer:
    return _result(session, ex, head, rid, error=True)


def _init_error(session: RuntimeSession, ex: Exchange, head: RequestHead, _: str) -> BodyConsumer:
    try:
        session._transition(RuntimeEvent.INIT_ERROR)
    except TransitionRefused as refused:
        return Reject(ex, wire.forbidden(refused.message))
    return _InitErrorUpload(session, ex, head)


RUNTIME_ROUTES: Router[RuntimeSession] = Router()
RUNTIME_ROUTES.add(b"GET", f"{V1}/invocation/next", _next)
RUNTIME_ROUTES.add(b"POST", f"{V1}/invocation/{{id}}/response", _response)
RUNTIME_ROUTES.add(b"POST", f"{V1}/invocation/{{id}}/error", _error)
RUNTIME_ROUTES.add(b"POST", f"{V1}/init/error", _init_error)
