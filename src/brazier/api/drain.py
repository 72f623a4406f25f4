"""Graceful shutdown at the HTTP edge: in-flight requests get a grace period, then a platform error.

On SIGTERM/SIGINT the server stops accepting connections and calls ``Drain.begin``. Requests
already running may finish for ``grace`` seconds. Past that, each one that has not started its
answer gets a ``ServiceException`` saying the server stopped it (never the function's own
``Runtime.ExitError``, which would read like a bug in the user's code), and its work is
cancelled, which ends its invocation before the sandboxes are closed.
"""

from __future__ import annotations

import asyncio
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from brazier.api.errors import error_response
from brazier.model.errors import ServiceException


class Drain:
    """ASGI middleware that can end every in-flight HTTP request once a grace period is over."""

    def __init__(self, app: ASGIApp, grace: float) -> None:
        self._app = app
        self.grace = grace
        self._expired = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self.in_flight = 0
        self.stopped = 0  # requests answered with the shutdown error

    def begin(self) -> None:
        """Start the grace period (once; later calls change nothing)."""
        if self._timer is None and not self._expired.is_set():
            self._timer = asyncio.get_running_loop().call_later(self.grace, self._expired.set)

    def expire(self) -> None:
        """End the grace period now."""
        self._expired.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        self.in_flight += 1
        try:
            work = asyncio.ensure_future(self._app(scope, receive, tracking_send))
            expired = asyncio.ensure_future(self._expired.wait())
            try:
                await asyncio.wait((work, expired), return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                work.cancel()
                raise
            finally:
                expired.cancel()
            if work.done():
                work.result()
                return
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            if not started:
                self.stopped += 1
                await self._stopped_reply(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _stopped_reply(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = ServiceException(
            f"brazier is shutting down: the request did not finish within the {self.grace:g} s"
            " shutdown grace period (--shutdown-grace) and was stopped"
        )
        await error_response(exc, str(uuid.uuid4()))(scope, receive, send)
