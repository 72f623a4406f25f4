"""The API server's connections: read timeouts, a minimum body rate, and a cap on how many.

uvicorn (0.54) bounds only the idle time *between* requests (``timeout_keep_alive``). A client
that opens a connection and sends nothing, sends a head a byte at a time, or announces a body
and stops sending it, holds a connection and a descriptor for ever (issue 11, item 5: 2,000 such
connections held 2,000 descriptors). This subclass of uvicorn's httptools protocol adds:

- a head timeout: a request's line and headers must be complete within ``head_timeout`` seconds
  of the connection opening or of the request's first byte;
- a body timeout: while a body is being received, some of it must arrive at least every
  ``body_timeout`` seconds, and past a grace period it must average ``min_body_rate`` bytes
  per second (not counted while uvicorn itself has paused reading because the app is behind);
- a connection cap: past ``max_connections`` open at once, a new connection is closed as soon as
  it is accepted (before it costs more than its descriptor).

A connection that runs out of time gets ``408 Request Timeout`` (when no answer was started) and
is closed; the app sees the client go (``http.disconnect``). Once a request is whole, no timer
runs until the answer is sent: an Invoke may take the function's whole timeout.

``GET /health`` is answered here, as its head is parsed, by the event loop itself: no task, no
ASGI app, no wait for the next loop iteration's ready queue (issue 11, item 6: under a burst of
2,000 cold starts the queue holds thousands of request steps). It is still the truth: only a
running loop answers it, after the app's startup and before its shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from brazier import __version__
from brazier.api import limits

log = logging.getLogger(__name__)

_TIMED_OUT_BODY = b'{"message":"The request was not received in time"}'
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMED_OUT_BODY), _TIMED_OUT_BODY)
)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    head_timeout: float = limits.HEADER_TIMEOUT
    body_timeout: float = limits.BODY_IDLE_TIMEOUT
    min_body_rate: float = limits.MIN_BODY_RATE
    body_rate_grace: float = limits.BODY_RATE_GRACE
    max_connections: int = 2048


def protocol_class(cfg: ConnectionLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with ``cfg``'s timers and cap (pass as ``Config(http=...)``)."""

    class GuardedHttpToolsProtocol(_Guarded):
        limits = cfg
        started = time.monotonic()

    return GuardedHttpToolsProtocol


def health_reply(started: float, *, keep_alive: bool) -> bytes:
    """``/health``'s whole HTTP answer (also what the ASGI route answers, see http.py)."""
    body = health_body(started)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n" % (
        len(body),
        b"" if keep_alive else b"connection: close\r\n",
    )
    return head + body


def health_body(started: float) -> bytes:
    doc = {"status": "ok", "version": __version__, "uptime": round(time.monotonic() - started, 3)}
    return json.dumps(doc, separators=(",", ":")).encode()


class _Guarded(HttpToolsProtocol):
    limits: ConnectionLimits
    started: float

    _timer: asyncio.TimerHandle | None = None
    _body_started = 0.0
    _body_last = 0.0
    _body_bytes = 0
    _in_body = False
    _answered_here = False  # the request being parsed was answered by this layer (/health)

    # -- connection -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("connection refused: %d open", len(self.connections) - 1)
            transport.abort()  # connection_lost follows, and removes it from the set
            return
        self._arm(self.limits.head_timeout, self._head_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._in_body = False
        super().connection_lost(exc)

    # -- parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._timer is None:
            self._arm(self.limits.head_timeout, self._head_expired)

    def on_headers_complete(self) -> None:
        self._disarm()
        if self._is_health():
            self._answer_health()
            return
        super().on_headers_complete()
        now = self.loop.time()
        self._in_body = True
        self._body_started = self._body_last = now
        self._body_bytes = 0
        self._arm(1.0, self._body_tick)

    def on_body(self, body: bytes) -> None:
        self._body_last = self.loop.time()
        self._body_bytes += len(body)
        if not self._answered_here:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm()
        if self._answered_here:
            self._answered_here = False
            return
        super().on_message_complete()

    # -- /health --------------------------------------------------------------------------------
    def _is_health(self) -> bool:
        """A plain ``GET /health`` (no query, no body) with no earlier answer still pending."""
        if self.url != b"/health" or self.parser.get_method() != b"GET":
            return False
        if any(n in (b"content-length", b"transfer-encoding") for n, _ in self.headers):
            return False
        return self.cycle is None or self.cycle.response_complete

    def _answer_health(self) -> None:
        self._answered_here = True
        keep_alive = self.parser.get_http_version() == "1.1" and self.parser.should_keep_alive()
        self.transport.write(health_reply(self.started, keep_alive=keep_alive))
        if not keep_alive:
            self.transport.close()
            return
        # As after any answer: the idle keep-alive timer runs until the next request.
        self.server_state.total_requests += 1
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    # -- timers ---------------------------------------------------------------------------------
    def _arm(self, delay: float, callback: object) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)  # type: ignore[arg-type]

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_expired(self) -> None:
        self._timer = None
        self._expire("head")

    def _body_tick(self) -> None:
        self._timer = None
        if not self._in_body or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:
            # The app is behind, not the client: the clock restarts when reading resumes.
            self._body_last = now
            self._body_started = now - self._body_bytes / max(self.limits.min_body_rate, 1.0)
        elif now - self._body_last > self.limits.body_timeout:
            self._expire("body (idle)")
            return
        elapsed = now - self._body_started
        if (
            elapsed > self.limits.body_rate_grace
            and self._body_bytes < self.limits.min_body_rate * elapsed
        ):
            self._expire("body (too slow)")
            return
        self._arm(1.0, self._body_tick)

    def _expire(self, what: str) -> None:
        if self.transport.is_closing():
            return
        log.info("closing %s: request %s not received in time", self.client, what)
        cycle = self.cycle
        if self._in_body:
            unanswered = cycle is not None and not cycle.response_started
        else:  # waiting for a head: the connection's last answer, if any, is complete
            unanswered = cycle is None or cycle.response_complete
        if unanswered:
            self.transport.write(_TIMED_OUT)
        self.transport.close()
