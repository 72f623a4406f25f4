"""brazier.runtime_api: the Lambda Runtime API (2018-06-01) served to one runtime per session.

The worker opens one session per runtime process on the sandbox's listening socket::

    async with open_runtime_session(listener) as session:
        init_error = await session.wait_init()
        result = await session.invoke(invocation)
        await session.wait_idle()
"""

from brazier.runtime_api.base import (
    FunctionError,
    FunctionResponse,
    InitError,
    Invocation,
    InvocationResult,
    RuntimeSessionProtocol,
    RuntimeSessionStatistics,
    SessionAborted,
    normalize_error_type,
)
from brazier.runtime_api.server import RuntimeSession, open_runtime_session
from brazier.runtime_api.states import RuntimeState, TransitionRefused
from brazier.runtime_api.wire import MAX_PAYLOAD_SIZE

__all__ = [
    "MAX_PAYLOAD_SIZE",
    "FunctionError",
    "FunctionResponse",
    "InitError",
    "Invocation",
    "InvocationResult",
    "RuntimeSession",
    "RuntimeSessionProtocol",
    "RuntimeSessionStatistics",
    "RuntimeState",
    "SessionAborted",
    "TransitionRefused",
    "normalize_error_type",
    "open_runtime_session",
]
