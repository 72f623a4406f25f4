"""Lambda's platform log lines, byte-exact (reference §4.1)."""

from __future__ import annotations

import json
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
    trace_id: str | None = None,
) -> str:
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms"
        f"\tBilled Duration: {billed(duration_ms, init_ms)} ms\tMemory Size: {memory_mb} MB"
        f"\tMax Memory Used: {max_memory_mb} MB\t"
    )
    if init_ms is not None:
        line += f"Init Duration: {init_ms:.2f} ms\t"
    xray = _sampled_trace(trace_id)
    if xray is not None:
        line += f"XRAY TraceId: {xray[0]}\tSegmentId: {xray[1]}\tSampled: true\t"
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


LOGS_DROPPED_REASON = (
    "Some logs were dropped because the function exceeded its log ingestion quota"
    " (2 MiB/s sustained, 8 MiB burst)"
)


def logs_dropped(records: int, size: int) -> str:
    """Brazier's own line (Lambda reports drops only to Telemetry API subscribers, as
    ``platform.logsDropped``): what the ingestion quota dropped since the last report."""
    return (
        f"LOGS_DROPPED DroppedRecords: {records}\tDroppedBytes: {size}"
        f"\tReason: {LOGS_DROPPED_REASON}\n"
    )


def _sampled_trace(trace_id: str | None) -> tuple[str, str] | None:
    """(TraceId, SegmentId) of a sampled trace header, else None."""
    if not trace_id or "Sampled=1" not in trace_id:
        return None
    parts = dict(p.split("=", 1) for p in trace_id.split(";") if "=" in p)
    return parts.get("Root", ""), parts.get("Parent", "")


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _event(kind: str, record: dict[str, object]) -> str:
    return json.dumps({"time": _now_iso(), "type": kind, "record": record}) + "\n"


class PlatformLines:
    """The platform's lines for one function, in its ``LoggingConfig`` format.

    Text: Lambda's tab-separated lines. JSON: Telemetry-style objects (``platform.start`` ...),
    dropped below the configured ``SystemLogLevel`` (all platform events are INFO; WARN hides
    them, as Lambda does)."""

    def __init__(self, log_format: str, system_log_level: str | None) -> None:
        self.json = log_format == "JSON"
        self.quiet = self.json and (system_log_level or "INFO") == "WARN"

    def init_start(self, runtime: str, region: str, name: str, version: str) -> str | None:
        if not self.json:
            return init_start(runtime, region)
        if self.quiet:
            return None
        return _event(
            "platform.initStart",
            {
                "initializationType": "on-demand",
                "phase": "init",
                "runtimeVersion": f"{runtime}.brazier",
                "runtimeVersionArn": f"arn:aws:lambda:{region}::runtime:brazier-{runtime}",
                "functionName": name,
                "functionVersion": version,
            },
        )

    def logs_dropped(self, records: int, size: int) -> str:
        """Always written, whatever ``SystemLogLevel``: it says that lines are missing."""
        if not self.json:
            return logs_dropped(records, size)
        return _event(
            "platform.logsDropped",
            {"reason": LOGS_DROPPED_REASON, "droppedRecords": records, "droppedBytes": size},
        )

    def init_report(self, ms: float, phase: str, status: str, error_type: str | None) -> str | None:
        if not self.json:
            return init_report(ms, phase, status, error_type)
        record: dict[str, object] = {
            "initializationType": "on-demand",
            "phase": phase,
            "status": status,
            "metrics": {"durationMs": round(ms, 3)},
        }
        if error_type:
            record["errorType"] = error_type
        return _event("platform.initReport", record)

    def start(self, request_id: str, version: str) -> str | None:
        if not self.json:
            return start(request_id, version)
        if self.quiet:
            return None
        return _event("platform.start", {"requestId": request_id, "version": version})

    def end(
        self, request_id: str, status: str, duration_ms: float, error_type: str | None
    ) -> str | None:
        if not self.json:
            return end(request_id)
        if self.quiet:
            return None
        record: dict[str, object] = {
            "requestId": request_id,
            "status": status,
            "metrics": {"durationMs": round(duration_ms, 3)},
        }
        if error_type:
            record["errorType"] = error_type
        return _event("platform.runtimeDone", record)

    def report(
        self,
        request_id: str,
        *,
        duration_ms: float,
        memory_mb: int,
        max_memory_mb: int,
        init_ms: float | None,
        status: str | None,
        error_type: str | None,
        trace_id: str | None,
    ) -> str | None:
        if not self.json:
            return report(
                request_id, duration_ms=duration_ms, memory_mb=memory_mb,
                max_memory_mb=max_memory_mb, init_ms=init_ms, status=status,
                error_type=error_type, trace_id=trace_id,
            )  # fmt: skip
        if self.quiet and status is None:
            return None
        metrics: dict[str, object] = {
            "durationMs": round(duration_ms, 3),
            "billedDurationMs": billed(duration_ms, init_ms),
            "memorySizeMB": memory_mb,
            "maxMemoryUsedMB": max_memory_mb,
        }
        if init_ms is not None:
            metrics["initDurationMs"] = round(init_ms, 3)
        record: dict[str, object] = {
            "requestId": request_id,
            "status": status or "success",
            "metrics": metrics,
        }
        if error_type:
            record["errorType"] = error_type
        xray = _sampled_trace(trace_id)
        if xray is not None:
            record["tracing"] = {"spanId": xray[1], "type": "X-Amzn-Trace-Id", "value": trace_id}
        return _event("platform.report", record)
