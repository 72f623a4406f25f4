"""A lean HTTP/1.1 server connection: ``asyncio.Protocol`` + ``httptools.HttpRequestParser``.

Why not uvicorn/h11/aiohttp: one listener per environment and up to ~1000 environments per
process, so per-connection cost must be one small object and the hot path a handful of Python
calls. httptools (llhttp) gives keep-alive, chunked bodies and trailers at C speed.

The connection knows nothing of Lambda. For each request it asks its :class:`Application` for a
:class:`BodyConsumer` when the head is complete, streams the body into it, and hands it an
:class:`Exchange` through which exactly one reply is written, now or later (a parked ``/next``).
Replies go out in request order even if a client pipelines.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

import httptools

from brazier.runtime_api import wire

__all__ = ["Application", "BodyConsumer", "Exchange", "HttpConnection", "RequestHead"]


class RequestHead:
    """Method, path (query stripped) and headers (names lower-cased) of one request."""

    __slots__ = ("headers", "method", "path")

    def __init__(self, method: bytes, path: str, headers: dict[str, str]) -> None:
        self.method = method
        self.path = path
        self.headers = headers


class BodyConsumer(Protocol):
    """Receives one request's body. Exactly one of ``on_complete``/``on_truncated`` is called."""

    def on_data(self, data: bytes) -> None:
        """A piece of the (de-chunked) body."""

    def on_trailer(self, name: str, value: str) -> None:
        """A trailer field of a chunked body (``name`` lower-cased)."""

    def on_complete(self) -> None:
        """The whole message arrived; reply through the exchange (now or later)."""

    def on_truncated(self) -> None:
        """The client went away (EOF or reset) before the body was complete."""


class Application(Protocol):
    """What a connection serves."""

    def on_connection(self, conn: HttpConnection, opened: bool) -> None:
        """Called once when the connection opens (``True``) and once when it is gone."""

    def on_request(self, exchange: Exchange, head: RequestHead) -> BodyConsumer:
        """The head of a request is complete; return who consumes its body."""


class Exchange:
    """One request's reply slot. ``reply`` may be called once, at any time, from the loop.

    ``on_gone`` (settable) is called if the connection is lost before a reply was written, so a
    parked ``/next`` can be un-parked.
    """

    __slots__ = ("_conn", "close_after", "done", "may_wait", "on_gone", "out")

    def __init__(self, conn: HttpConnection, close_after: bool) -> None:
        self._conn = conn
        self.close_after = close_after
        self.done = False
        self.may_wait = False
        self.out: tuple[bytes, ...] | None = None
        self.on_gone: Callable[[Exchange], None] | None = None

    @property
    def alive(self) -> bool:
        """False once the connection is closing; replying then is a silent no-op."""
        return not self._conn.closing

    def drop(self) -> None:
        """Give up on this exchange: close its connection without replying. Idempotent."""
        self.done = True
        self._conn.close()

    def reply(self, *buffers: bytes, close: bool = False, may_wait: bool = False) -> None:
        """Write the complete reply (already rendered bytes; several buffers avoid a copy).

        ``may_wait``: when the client has already pipelined its next request on this
        connection and that one's reply is not ready, this reply is held and written together
        with it (one write, one wake-up of the client instead of two). For a reply the client
        cannot act on before the next one anyway: the Runtime API's 202 to a result, followed
        by the runtime's ``/next``. Replies are still written in request order, and a closing
        connection writes what it holds first.
        """
        if self.done:
            raise RuntimeError("exchange already replied")
        self.done = True
        self.out = buffers
        self.may_wait = may_wait
        self.close_after = self.close_after or close
        self._conn.flush()


class HttpConnection(asyncio.Protocol):
    """One accepted connection. Created by the server's protocol factory."""

    __slots__ = (
        "_app",
        "_consumer",
        "_feeding",
        "_head_bytes",
        "_header_phase",
        "_headers",
        "_parser",
        "_queue",
        "_url",
        "bytes_received",
        "bytes_sent",
        "closing",
        "transport",
    )

    def __init__(self, app: Application) -> None:
        self._app = app
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[Exchange] = deque()
        self._consumer: BodyConsumer | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_phase = False
        self._head_bytes = 0
        self._feeding = False
        self.transport: asyncio.Transport | None = None
        self.closing = False
        self.bytes_received = 0
        self.bytes_sent = 0

    # --- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        self._app.on_connection(self, True)

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        # Replies made while these bytes are parsed go out together afterwards (a pipelining
        # client gets one write, not one per request).
        self._feeding = True
        failure = None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            failure = wire.BAD_REQUEST
        except httptools.HttpParserError as exc:
            cause = exc.__cause__ or exc.__context__
            failure = wire.HEAD_TOO_LARGE if isinstance(cause, _HeadTooLarge) else wire.BAD_REQUEST
        finally:
            self._feeding = False
        if failure is not None:
            self._fail(failure)
        elif self._queue:
            self.flush()

    def eof_received(self) -> bool:
        # A half-close mid-body is a truncated upload: answer 400 on the still-writable side.
        # After a complete request (a parked /next) EOF is taken as "client gone", although HTTP
        # allows a half-closed client: a FIN from a dead runtime looks the same, and delivering
        # an event into it would lose the invoke until its timeout. No runtime client
        # half-closes.
        self._truncate(writable=True)
        self.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._truncate(writable=False)
        for ex in self._queue:
            if not ex.done and ex.on_gone is not None:
                ex.on_gone(ex)
        self._queue.clear()
        self._app.on_connection(self, False)

    # --- httptools callbacks --------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._header_phase = True
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > wire.MAX_HEAD_SIZE:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._header_phase:
            self._head_bytes += len(name) + len(value)
            if self._head_bytes > wire.MAX_HEAD_SIZE:
                raise _HeadTooLarge
            self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        elif self._consumer is not None:
            self._consumer.on_trailer(name.decode("latin-1").lower(), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self._header_phase = False
        parser = self._parser
        ex = Exchange(self, not parser.should_keep_alive())
        self._queue.append(ex)
        path = self._url.decode("latin-1")
        query = path.find("?")
        if query >= 0:
            path = path[:query]
        headers = self._headers
        if headers.get(wire.H_EXPECT, "").lower() == "100-continue" and self.transport:
            self._write_ready(hold=False)  # earlier pipelined requests' replies come first
            if len(self._queue) == 1:  # else an earlier reply is still pending: no interim 100
                self.transport.write(wire.CONTINUE)
        self._consumer = self._app.on_request(ex, RequestHead(parser.get_method(), path, headers))

    def on_body(self, body: bytes) -> None:
        if self._consumer is not None:
            self._consumer.on_data(body)

    def on_message_complete(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.on_complete()

    # --- writing --------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every finished reply at the head of the queue, in request order (one write)."""
        if not self._feeding:
            self._write_ready(hold=True)

    def _write_ready(self, *, hold: bool) -> None:
        queue = self._queue
        transport = self.transport
        out: list[bytes] = []
        close = False
        while queue and queue[0].out is not None:
            ex = queue[0]
            if hold and ex.may_wait and len(queue) > 1 and queue[1].out is None:
                break  # held until the next request's reply (see Exchange.reply)
            queue.popleft()
            if transport is None or self.closing:
                continue
            assert ex.out is not None
            out += ex.out
            if ex.close_after:
                close = True
                break
        if out and transport is not None:
            if len(out) == 1:
                transport.write(out[0])
            else:
                transport.writelines(out)
            self.bytes_sent += sum(map(len, out))
        if close:
            self.closing = True  # nothing after a closing reply is written
            if transport is not None:
                transport.close()

    def close(self) -> None:
        """Close after writing the replies that are ready (held ones too). Idempotent."""
        if not self.closing:
            self._write_ready(hold=False)
            self.closing = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (parked replies are never sent). Idempotent."""
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, response: bytes) -> None:
        self._write_ready(hold=False)
        if self.transport is not None and not self.closing:
            self.transport.write(response)
        self.close()

    def _truncate(self, *, writable: bool) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        consumer.on_truncated()
        if not writable:
            self.closing = True


class _HeadTooLarge(Exception):
    """Raised inside a parser callback; httptools wraps it in HttpParserCallbackError."""
