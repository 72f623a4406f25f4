"""The HTTP application: the Lambda API, health, and code download links."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from brazier import __version__
from brazier.api import function_urls, limits
from brazier.api.body import ClientGone, read_body
from brazier.api.errors import error_response
from brazier.api.function_urls import FunctionUrlApp
from brazier.api.lambda_api import Authenticator, LambdaApi
from brazier.api.layer_ops import sbom_route
from brazier.api.operations import Services
from brazier.api.pacing import Pacer
from brazier.model.errors import (
    InvalidParameterValueException,
    LambdaError,
    RequestEntityTooLargeException,
)

_BAD_REQUEST = Response(b"Bad Request", status_code=400, media_type="text/plain")

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def _log_window(request: Request) -> tuple[int, int]:
    """``after`` and ``limit`` of a logs query; ValueError when they are not usable numbers."""
    after = int(request.query_params.get("after", "0"))
    limit = min(int(request.query_params.get("limit", "1000")), 10000)
    if not (0 <= after < 2**63 and limit > 0):  # SQLite's INTEGER; LIMIT -1 is "all"
        raise ValueError(after, limit)
    return after, limit


def build_http_app(
    services: Services,
    authenticate: Authenticator,
    lifespan: Lifespan | None = None,
    *,
    iam: Authenticator | None = None,
    spool_dir: Path | None = None,
) -> ASGIApp:
    """The server's ASGI app: the Lambda API, plus health, code links and logs.

    ``spool_dir`` receives large request bodies while they arrive (in memory when None)."""
    started = time.monotonic()
    api = LambdaApi(services, authenticate, spool_dir)

    async def small_body(request: Request) -> bytes:
        """A ``/_brazier`` route's body (they are all GETs): refused past a few KiB."""
        try:
            return await read_body(
                request.receive,
                request.headers,
                limits.SITE_REQUEST,
                refuse=lambda: RequestEntityTooLargeException(
                    f"Request must be smaller than {limits.SITE_REQUEST} bytes"
                ),
            )
        except ClientGone:
            return b""  # the answer goes nowhere; the route ends as usual

    async def health(request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "version": __version__, "uptime": round(time.monotonic() - started, 3)}
        )

    async def code(request: Request) -> Response:
        sha = request.path_params["sha"]
        q = request.query_params
        owner = q.get("Owner", "")
        if not services.code_urls.check(sha, owner, q.get("Expires", ""), q.get("Signature", "")):
            return Response(
                b"<Error><Code>AccessDenied</Code><Message>Request has expired or the signature"
                b" does not match</Message></Error>",
                status_code=403,
                media_type="application/xml",
            )
        if ":layer:" in owner:
            path = await services.layers.located_content(owner, sha)
        else:
            path = await services.functions.located_code(owner, sha)
        if path is None:
            return Response(status_code=404)
        return FileResponse(path, media_type="application/zip")

    async def logs(request: Request) -> Response:
        try:
            body = await small_body(request)
            caller = authenticate(
                request.method,
                request.scope["raw_path"].decode("latin-1"),
                request.scope["query_string"].decode("latin-1"),
                request.headers,
                body,
            )
            after, limit = _log_window(request)
            events = await services.logs.function_events(
                caller, request.path_params["name"], after_seq=after, limit=limit
            )
        except LambdaError as exc:
            return error_response(exc, "logs")
        except ValueError:
            return error_response(
                InvalidParameterValueException("after and limit are numbers"), "logs"
            )
        return JSONResponse(
            {
                "events": [
                    {
                        "logStreamName": e.log_stream,
                        "timestamp": e.timestamp,
                        "message": e.message,
                        "seq": e.seq,
                    }
                    for e in events
                ]
            }
        )

    async def layer_sbom(request: Request) -> Response:
        try:
            caller = authenticate(
                request.method,
                request.scope["raw_path"].decode("latin-1"),
                request.scope["query_string"].decode("latin-1"),
                request.headers,
                await small_body(request),
            )
            pp = request.path_params
            bom = await sbom_route(services, caller, pp["name"], pp["version"])
        except LambdaError as exc:
            return error_response(exc, "sbom")
        return JSONResponse(bom, media_type="application/vnd.cyclonedx+json; version=1.5")

    site = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/_brazier/code/{sha}", code, methods=["GET"]),
            Route("/_brazier/v1/functions/{name}/logs", logs, methods=["GET"]),
            Route(
                "/_brazier/v1/layers/{name}/versions/{version}/sbom", layer_sbom, methods=["GET"]
            ),
        ],
        lifespan=lifespan,
    )

    urls = FunctionUrlApp(services.urls, services.invoke, iam or authenticate, spool_dir)
    # A burst's requests start a bounded amount of work per loop iteration (pacing.py), so the
    # loop keeps reading other connections: /health (connections.py), runtimes, answers.
    pacer = Pacer()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http":
            await site(scope, receive, send)
            return
        if sum(name == b"host" for name, _ in scope["headers"]) > 1:
            # Two Host headers: which one routes is ambiguous (RFC 9112 §3.2), so none does.
            await _BAD_REQUEST(scope, receive, send)
            return
        url = function_urls.match(scope)
        if url is None and (path == "/health" or path.startswith("/_brazier/")):
            await site(scope, receive, send)
            return
        await pacer.turn()
        if url is not None:
            await urls(scope, receive, send, *url)
        else:
            await api(scope, receive, send)

    return app
