"""Byte-level rendering of Runtime API replies: limits, header names, bodies, status lines.

Everything the runtime can receive is built here, so the exact strings of the reference
(``lambda-interfaces.md`` §1) live in one place. Constant replies are pre-rendered once; the
``/next`` head is one ``bytes`` formatting call, and the payload is written as a separate buffer
(no copy, no JSON round trip).
"""

from __future__ import annotations

import json
from http import HTTPStatus

from brazier.runtime_api.base import Invocation

__all__ = [
    "MAX_PAYLOAD_SIZE",
    "error_body",
    "next_head",
    "render",
]

# RIE interop.MaxPayloadSize: 6 MiB + 100 bytes, for buffered responses and error bodies.
MAX_PAYLOAD_SIZE = 6 * 1024 * 1024 + 100
# Streamed responses: AWS documents 200 MB (20 MB before 2025-07-31). While we still buffer
# them, keep the older 20 MiB so one environment cannot pin 200 MB of host memory.
MAX_STREAMED_SIZE = 20 * 1024 * 1024
# Request line + headers of one request; above this the connection is answered 431 and closed.
MAX_HEAD_SIZE = 64 * 1024

JSON = "application/json"

H_CONTENT_TYPE = "content-type"
H_ERROR_TYPE = "lambda-runtime-function-error-type"
H_ERROR_BODY = "lambda-runtime-function-error-body"
H_RESPONSE_MODE = "lambda-runtime-function-response-mode"
H_EXPECT = "expect"

RESPONSE_MODE_STREAMING = "streaming"

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def error_body(error_type: str, message: str) -> bytes:
    """``{"errorMessage": ..., "errorType": ...}`` as RIE renders it (compact, that key order)."""
    return json.dumps(
        {"errorMessage": message, "errorType": error_type}, separators=(",", ":")
    ).encode()


def render(
    status: int, body: bytes = b"", content_type: str | None = JSON, *, close: bool = False
) -> bytes:
    """A complete HTTP/1.1 response with ``Content-Length`` (and ``Connection: close``)."""
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
    if content_type is not None:
        parts.append(b"Content-Type: %s\r\n" % content_type.encode())
    if close:
        parts.append(b"Connection: close\r\n")
    parts.append(b"Content-Length: %d\r\n\r\n" % len(body))
    parts.append(body)
    return b"".join(parts)


# --- constant replies, rendered once ---------------------------------------------------------
ACCEPTED = render(202, b'{"status":"OK"}')
INVALID_REQUEST_ID = render(400, error_body("InvalidRequestID", "Invalid request ID"))
INVALID_RESPONSE_MODE = render(
    400, error_body("InvalidFunctionResponseMode", "Invalid function response mode")
)
TOO_LARGE = render(
    413,
    error_body(
        "RequestEntityTooLarge",
        f"Exceeded maximum allowed payload size ({MAX_PAYLOAD_SIZE} bytes).",
    ),
)
TRUNCATED = render(
    400,
    error_body("TruncatedHTTPRequest", "HTTP request detected as truncated"),
    close=True,
)
NOT_FOUND = render(404, error_body("NotFound", "Not Found"))
METHOD_NOT_ALLOWED = render(405, error_body("MethodNotAllowed", "Method Not Allowed"))
BAD_REQUEST = render(400, error_body("BadRequest", "Malformed HTTP request"), close=True)
HEAD_TOO_LARGE = render(
    431, error_body("RequestHeaderFieldsTooLarge", "Request header too large"), close=True
)
SHUTTING_DOWN = render(500, error_body("InternalServerError", "Internal Server Error"), close=True)

# --- bodies the *invoker* receives for platform-synthesised function errors -------------------
RESPONSE_TOO_LARGE_RESULT = error_body(
    "Function.ResponseSizeTooLarge",
    f"Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_SIZE} bytes).",
)


def truncated_result(request_id: str) -> bytes:
    """Invoker payload when the runtime's upload broke off mid-body. [?] wording is ours."""
    return error_body(
        "Runtime.TruncatedResponse",
        f"RequestId: {request_id} Error: Runtime response was truncated",
    )


def invalid_mode_result(request_id: str) -> bytes:
    """Invoker payload for a bad ``Lambda-Runtime-Function-Response-Mode``. [?] wording is ours."""
    return error_body(
        "Runtime.InvalidResponseModeHeader",
        f"RequestId: {request_id} Error: Invalid function response mode",
    )


def undecodable_error_body_result(request_id: str, error_type: str) -> bytes:
    """Invoker payload for a streamed error whose error-body trailer is not base64. [?] ours."""
    return error_body(
        error_type,
        f"RequestId: {request_id} Error: the runtime's Lambda-Runtime-Function-Error-Body "
        "trailer is not valid base64",
    )


def missing_error_body_result(request_id: str, error_type: str) -> bytes:
    """Invoker payload for a streamed error that came without an error body. [?] ours."""
    return error_body(
        error_type, f"RequestId: {request_id} Error: the runtime reported {error_type} mid-stream"
    )


def forbidden(message: str) -> bytes:
    """403 ``InvalidStateTransition`` with RIE's message (see ``states.TransitionRefused``)."""
    return render(403, error_body("InvalidStateTransition", message))


def next_head(inv: Invocation) -> bytes:
    """Status line and headers of the ``/next`` reply for ``inv`` (the payload follows as-is).

    Optional headers appear only when set (§1.2). Values were checked for CR/LF when ``inv`` was
    built. Header values are UTF-8 (client context JSON may hold non-ASCII), as Go's RIE sends.
    """
    optional = b""
    if inv.trace_id is not None:
        optional += b"Lambda-Runtime-Trace-Id: %s\r\n" % inv.trace_id.encode()
    if inv.client_context is not None:
        optional += b"Lambda-Runtime-Client-Context: %s\r\n" % inv.client_context.encode()
    if inv.cognito_identity is not None:
        optional += b"Lambda-Runtime-Cognito-Identity: %s\r\n" % inv.cognito_identity.encode()
    if inv.tenant_id is not None:
        optional += b"Lambda-Runtime-Aws-Tenant-Id: %s\r\n" % inv.tenant_id.encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nLambda-Runtime-Aws-Request-Id: %s\r\n"
        b"Lambda-Runtime-Deadline-Ms: %d\r\nLambda-Runtime-Invoked-Function-Arn: %s\r\n"
        b"%sContent-Length: %d\r\n\r\n"
        % (
            inv.content_type.encode(),
            inv.request_id.encode(),
            inv.deadline_ms,
            inv.invoked_function_arn.encode(),
            optional,
            len(inv.payload),
        )
    )
