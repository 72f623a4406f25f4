"""Per-request values the edge shares with the operations it calls."""

from __future__ import annotations

from contextvars import ContextVar

# The id of the request being served: its x-amzn-RequestId, and for Invoke also the invocation's
# request id (Lambda answers an Invoke with the function's aws_request_id).
REQUEST_ID: ContextVar[str] = ContextVar("brazier_request_id")
