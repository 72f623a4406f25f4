"""Every limit of the HTTP edge, defined once: request body caps per route, and connection timers.

Body caps are Lambda's own where Lambda has one (a request over the cap is refused with 413
``RequestEntityTooLargeException`` and AWS's message, recorded for CreateFunction and Invoke):

- CreateFunction, UpdateFunctionCode, PublishLayerVersion: 70,167,211 bytes, the JSON request
  carrying a 50 MB zip in base64 (AWS's recorded message names this exact figure);
- Invoke: 6 MB (the Event invocation type's 1 MB is checked by the invoke service, with its
  own message);
- every other Lambda operation: 256 KiB (brazier's choice: their largest member, a policy
  statement or an environment, is ≤ 20 KB in Lambda);
- function URLs: 6 MB, the payload limit of the invoke behind them;
- ``/_brazier`` routes (all GET): 16 KiB.

Bodies above :data:`SPOOL_ABOVE` are written to a file under the data dir while they arrive, so
a request that is refused half-way never held more than that in memory (decision 0012).
"""

from __future__ import annotations

from typing import Final

from brazier.control.code_package import MAX_ZIPPED
from brazier.invoke.service import SYNC_PAYLOAD_LIMIT
from brazier.model.errors import RequestEntityTooLargeException

# --- request bodies ----------------------------------------------------------------------------

# "Request must be smaller than 70167211 bytes for the CreateFunction operation" (recorded).
CODE_REQUEST: Final = 70_167_211
assert CODE_REQUEST > MAX_ZIPPED * 4 // 3  # the zip's base64 fits, with room for the JSON
INVOKE_REQUEST: Final = SYNC_PAYLOAD_LIMIT
SMALL_REQUEST: Final = 256 * 1024
FUNCTION_URL_REQUEST: Final = SYNC_PAYLOAD_LIMIT
SITE_REQUEST: Final = 16 * 1024
# Bodies larger than this are spooled to disk as they arrive, and the sender is authenticated
# (as far as the headers allow) before any of it is read.
SPOOL_ABOVE: Final = 1024 * 1024

# Large code uploads (spooled bodies) decoded and handled at once; more wait their turn, so
# the decoded zips in memory are at most this many (~100 MB of RSS each while decoded).
CONCURRENT_CODE_UPLOADS: Final = 2

_BY_OPERATION: Final = {
    "CreateFunction": CODE_REQUEST,
    "UpdateFunctionCode": CODE_REQUEST,
    "PublishLayerVersion": CODE_REQUEST,
    "Invoke": INVOKE_REQUEST,
}
# How AWS's message names an operation when it differs from the model's name.
_WIRE_NAME: Final = {"Invoke": "InvokeFunction"}


def request_limit(operation: str) -> int:
    """The largest request body, in bytes, that ``operation`` accepts."""
    return _BY_OPERATION.get(operation, SMALL_REQUEST)


def too_large(operation: str, limit: int) -> RequestEntityTooLargeException:
    """AWS's refusal of a body over ``limit`` (recorded for CreateFunction and Invoke)."""
    name = _WIRE_NAME.get(operation, operation)
    return RequestEntityTooLargeException(
        f"Request must be smaller than {limit} bytes for the {name} operation"
    )


# --- connections (the API server) --------------------------------------------------------------

# A request's line and headers must arrive whole within this many seconds of its first byte
# (or of the connection's opening): what slowloris clients hold connections open with.
HEADER_TIMEOUT: Final = 10.0
# While a body is being received, some of it must arrive at least this often...
BODY_IDLE_TIMEOUT: Final = 10.0
# ...and, past a grace period, the body must average at least this rate (bytes per second):
# a 70 MB upload at the minimum rate takes under 20 minutes.
MIN_BODY_RATE: Final = 64 * 1024
BODY_RATE_GRACE: Final = 10.0
# An idle keep-alive connection is closed after this many seconds (uvicorn's default).
KEEP_ALIVE_TIMEOUT: Final = 5
# Connections open at once; past this the server closes new ones at once. Each costs a
# descriptor and ~10 KB; at least the account concurrency plus this many for control-plane
# calls, or what the open files limit leaves (open_files.py, `connection_cap`).
MAX_CONNECTIONS_EXTRA: Final = 1024
