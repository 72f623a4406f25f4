"""The one place where errors become AWS-shaped HTTP responses."""

from __future__ import annotations

import json
import logging

from starlette.responses import Response

from brazier.model.errors import LambdaError, ServiceException

log = logging.getLogger(__name__)


def error_response(exc: LambdaError, request_id: str) -> Response:
    headers = {
        "x-amzn-ErrorType": exc.code,
        "x-amzn-RequestId": request_id,
        **exc.headers,
    }
    body = json.dumps(exc.body(), separators=(",", ":")).encode()
    return Response(body, status_code=exc.status, headers=headers, media_type="application/json")


def unexpected_response(exc: BaseException, request_id: str) -> Response:
    log.exception("unhandled error in request %s", request_id, exc_info=exc)
    return error_response(
        ServiceException(f"An internal error occurred (request {request_id})."), request_id
    )
