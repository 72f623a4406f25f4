"""Invocation records (version 1.0) for destinations, as Lambda sends them (§6.2).

``condition`` is Success, RetriesExhausted, EventAgeExceeded or ZeroReservedConcurrency; the last
has no responseContext or responsePayload (no attempt was made).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from brazier.model.invocation import InvokeResult, Outcome

SUCCESS = "Success"
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"
ZERO_RESERVED_CONCURRENCY = "ZeroReservedConcurrency"


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def response_of(result: InvokeResult) -> bytes:
    """An attempt's response as the record shows it (kept on the event between attempts)."""
    context: dict[str, Any] = {"statusCode": 200, "executedVersion": result.executed_version}
    if result.outcome is Outcome.FUNCTION_ERROR:
        context["functionError"] = "Unhandled"
    return json.dumps(
        {"responseContext": context, "responsePayload": _json_or_text(result.payload)}
    ).encode()


def dead_letter_attributes(request_id: str, condition: str, response: bytes | None) -> bytes:
    """A DLQ message's attributes (SQS MessageAttributes form), kept as JSON until it is sent:
    the request id, the invoke's HTTP status and the error message's first kilobyte."""
    status, message = "429", condition
    if response is not None:
        status = "200"
        payload = json.loads(response).get("responsePayload")
        if isinstance(payload, dict) and isinstance(payload.get("errorMessage"), str):
            message = payload["errorMessage"]
    return json.dumps(
        {
            "RequestID": {"DataType": "String", "StringValue": request_id},
            "ErrorCode": {"DataType": "Number", "StringValue": status},
            "ErrorMessage": {"DataType": "String", "StringValue": message[:1024] or condition},
        }
    ).encode()


def invocation_record(
    *,
    condition: str,
    request_id: str,
    function_arn: str,
    invoke_count: int,
    request_payload: bytes,
    response: bytes | None,
    at: float,
) -> bytes:
    stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": stamp.replace("+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": _json_or_text(request_payload),
    }
    if response is not None and condition != ZERO_RESERVED_CONCURRENCY:
        record.update(json.loads(response))
    return json.dumps(record, separators=(",", ":")).encode()
