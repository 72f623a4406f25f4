"""Lambda's platform log lines, byte-exact (reference §4.1)."""

from __future__ import annotations

import math
import secrets
import time
from datetime import UTC, datetime


def stream_name(version: str, when: float | None = None) -> str:
    """``YYYY/MM/DD/[<version>]<32 hex>``: one log stream per execution environment."""
    day = time.strftime("%Y/%m/%d", time.gmtime(when if when is not None else time.time()))
    return f"{day}/[{version}]{secrets.token_hex(16)}"


def init_start(runtime: str, region: str) -> str:
    return (
        f"INIT_START Runtime Version: {runtime.replace('python', 'python:')}.brazier"
        f"\tRuntime Version ARN: arn:aws:lambda:{region}::runtime:brazier-{runtime}\n"
    )


def start(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}\n"


def end(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def billed(duration_ms: float, init_ms: float | None) -> int:
    """Billed Duration: the ceiling of the duration, plus the init on on-demand cold starts."""
    return max(1, math.ceil(duration_ms + (init_ms or 0.0)))


def report(
    request_id: str,
    *,
    duration_ms: float,
    memory_mb: int,
    max_memory_mb: int,
    init_ms: float | None,
    status: str | None = None,
    error_type: str | None = None,
) -> str:
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms"
        f"\tBilled Duration: {billed(duration_ms, init_ms)} ms\tMemory Size: {memory_mb} MB"
        f"\tMax Memory Used: {max_memory_mb} MB\t"
    )
    if init_ms is not None:
        line += f"Init Duration: {init_ms:.2f} ms\t"
    if status is not None:
        line += f"Status: {status}\t"
    if error_type is not None:
        line += f"Error Type: {error_type}\t"
    return line + "\n"


def init_report(init_ms: float, phase: str, status: str, error_type: str | None = None) -> str:
    line = f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: {phase}\tStatus: {status}"
    if error_type:
        line += f"\tError Type: {error_type}"
    return line + "\n"


def timed_out(request_id: str, timeout_s: float) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return f"{now} {request_id} Task timed out after {timeout_s:.2f} seconds\n"
