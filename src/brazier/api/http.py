"""The HTTP application: the Lambda API, health, and code download links."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from brazier import __version__
from brazier.api.lambda_api import Authenticator, LambdaApi
from brazier.api.operations import Services

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def build_http_app(
    services: Services, authenticate: Authenticator, lifespan: Lifespan | None = None
) -> Starlette:
    started = time.monotonic()
    api = LambdaApi(services, authenticate)

    async def health(request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "version": __version__, "uptime": round(time.monotonic() - started, 3)}
        )

    async def code(request: Request) -> Response:
        sha = request.path_params["sha"]
        q = request.query_params
        if not services.code_urls.check(sha, q.get("Expires", ""), q.get("Signature", "")):
            return Response(
                b"<Error><Code>AccessDenied</Code><Message>Request has expired or the signature"
                b" does not match</Message></Error>",
                status_code=403,
                media_type="application/xml",
            )
        path = services.functions.code_path(sha)
        if path is None:
            return Response(status_code=404)
        return FileResponse(path, media_type="application/zip")

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/_brazier/code/{sha}", code, methods=["GET"]),
            Route("/{path:path}", api.handle, methods=methods),
        ],
        lifespan=lifespan,
    )
