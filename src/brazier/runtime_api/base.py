"""The boundary between the worker and one runtime's Runtime API session.

Values crossing it are frozen dataclasses; payloads are ``bytes`` that are passed through untouched
(never decoded, never re-encoded as JSON). The worker drives a session through the
:class:`RuntimeSession` protocol; :mod:`brazier.runtime_api.server` implements it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from brazier.model.errors import BrazierError

__all__ = [
    "FunctionError",
    "FunctionResponse",
    "InitError",
    "Invocation",
    "InvocationResult",
    "RuntimeSessionProtocol",
    "RuntimeSessionStatistics",
    "SessionAborted",
    "normalize_error_type",
]

# RIE accepts `(Runtime|Function)\.[A-Z][a-zA-Z]+` and maps everything else to an Unknown type.
_VALID_ERROR_TYPE = re.compile(r"(?:Runtime|Function)\.[A-Z][a-zA-Z]+")


def normalize_error_type(header: str | None) -> str:
    """The platform's internal error type for a ``Lambda-Runtime-Function-Error-Type`` value.

    Absent or malformed values become ``Runtime.Unknown`` (``Function.Unknown`` when they start
    with ``Function.``), as RIE does. Pure function.
    """
    if header is None:
        return "Runtime.Unknown"
    if _VALID_ERROR_TYPE.fullmatch(header):
        return header
    return "Function.Unknown" if header.startswith("Function.") else "Runtime.Unknown"


class SessionAborted(BrazierError):
    """The session was aborted or closed; the pending call cannot complete.

    Raised by ``invoke``, ``wait_init`` and ``wait_idle``. ``reason`` is the text given to
    ``abort``. (Would live in ``brazier.model.errors``; kept here while that package is owned by
    someone else.)
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check_header_value(name: str, value: str | None) -> None:
    if value is not None and ("\r" in value or "\n" in value):
        raise ValueError(f"{name} must not contain CR or LF")


@dataclass(frozen=True, slots=True)
class Invocation:
    """One event for the runtime, rendered as the ``/next`` reply.

    ``payload`` is the raw body, ``deadline_ms`` the Unix epoch deadline in milliseconds.
    ``client_context`` and ``cognito_identity`` are JSON *text* (already base64-decoded). The
    optional fields are sent as headers only when not ``None``. Construction rejects CR/LF in any
    header value (header injection).
    """

    request_id: str
    payload: bytes
    deadline_ms: int
    invoked_function_arn: str
    trace_id: str | None = None
    client_context: str | None = None
    cognito_identity: str | None = None
    tenant_id: str | None = None
    content_type: str = "application/json"

    def __post_init__(self) -> None:
        if not self.request_id or "/" in self.request_id:
            raise ValueError("request_id must be non-empty and contain no '/'")
        for name in (
            "request_id",
            "invoked_function_arn",
            "trace_id",
            "client_context",
            "cognito_identity",
            "tenant_id",
            "content_type",
        ):
            _check_header_value(name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class FunctionResponse:
    """A successful ``/response``: the body verbatim and the Content-Type the runtime sent."""

    body: bytes
    content_type: str | None


@dataclass(frozen=True, slots=True)
class FunctionError:
    """An unhandled function error, rendered by Invoke as ``X-Amz-Function-Error: Unhandled``.

    ``body`` is the runtime's ``/error`` body verbatim, or a platform-built JSON body for the
    errors the platform synthesises (``Function.ResponseSizeTooLarge``,
    ``Runtime.TruncatedResponse``, ``Runtime.InvalidResponseModeHeader``).
    ``error_type_header`` is the raw ``Lambda-Runtime-Function-Error-Type`` (``None`` if absent or
    synthesised); ``error_type`` is the internal type (see :func:`normalize_error_type`).
    """

    body: bytes
    error_type: str
    error_type_header: str | None = None
    content_type: str | None = "application/json"


@dataclass(frozen=True, slots=True)
class InitError:
    """``/runtime/init/error``: served as the reply to the first invoke, then the env resets."""

    body: bytes
    error_type: str
    error_type_header: str | None = None
    content_type: str | None = None


# A streaming variant (chunks + trailer error) joins this union with full streaming support.
InvocationResult = FunctionResponse | FunctionError | InitError


@dataclass(frozen=True, slots=True)
class RuntimeSessionStatistics:
    """A snapshot of one session's counters (cheap to take, never blocks)."""

    state: str
    connections_accepted: int
    connections_open: int
    requests: int
    rejected_requests: int
    invocations: int
    responses: int
    function_errors: int
    init_errors: int
    bytes_received: int
    bytes_sent: int


class RuntimeSessionProtocol(Protocol):
    """What the worker sees of one runtime process's Runtime API.

    One session serves one runtime process incarnation (one init). After ``abort`` or an init
    error, close it and open a new session on the same listener for the re-init.
    """

    async def wait_init(self) -> InitError | None:
        """Wait until the runtime finished init: its first ``/next`` (-> ``None``) or
        ``/runtime/init/error`` (-> the error). Idempotent: later calls return the same outcome at
        once. Raises :class:`SessionAborted` after ``abort``/``aclose``. No timeout of its own."""
        ...

    async def invoke(self, invocation: Invocation) -> InvocationResult:
        """Deliver ``invocation`` to the parked ``/next`` (or the next to arrive) and wait for its
        ``/response`` or ``/error``. Returns the runtime's :class:`InitError` if the runtime
        reported one. Not idempotent; exactly one at a time: a concurrent call raises
        ``brazier.model.errors.InvalidStateTransition``. Raises :class:`SessionAborted` after
        ``abort``/``aclose``. No timeout of its own: wrap it in ``asyncio.timeout`` and call
        ``abort`` on expiry."""
        ...

    async def wait_idle(self) -> None:
        """Wait until the runtime has called ``/next`` again after the last result (the end of
        the invoke phase; the environment may be frozen). Returns at once if it already has.
        Raises :class:`SessionAborted` if the session is aborted, closed or failed init."""
        ...

    @property
    def idle(self) -> bool:
        """Whether ``wait_idle`` would return at once without raising."""
        ...

    def abort(self, reason: str) -> None:
        """Put the session in its terminal state: fail every pending call with
        :class:`SessionAborted` and drop all connections. Idempotent; never raises."""
        ...

    def statistics(self) -> RuntimeSessionStatistics:
        """Current counters. Valid at any time, also after close."""
        ...

    async def aclose(self) -> None:
        """Stop serving, abort if not yet terminal, release everything. Idempotent. The
        listening socket handed to ``open_runtime_session`` stays open (it is the caller's)."""
        ...
