"""AWS-shaped error responses for the few routes outside the Lambda API (logs, code links)."""

from __future__ import annotations

from starlette.responses import Response

from brazier.api.lambda_api import error_reply
from brazier.model.errors import LambdaError


def error_response(exc: LambdaError, request_id: str) -> Response:
    reply = error_reply(exc)
    headers = {"x-amzn-RequestId": request_id, **reply.headers}
    return Response(
        reply.body, status_code=reply.status, headers=headers, media_type=reply.content_type
    )
