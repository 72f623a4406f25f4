"""``RuntimeSession``: the Runtime API of one runtime process, served on its sandbox's listener.

Cost per environment: one ``asyncio.Server`` on a dup of the listener, one small object per
connection, no threads, no per-env tasks. The hot path (``invoke`` -> parked ``/next`` ->
``/response``) is: build one ``bytes`` head, ``writelines`` head + payload, then on the
``/response`` message a ``set_result`` on one future and a pre-rendered 202.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from types import TracebackType

from brazier.model.errors import InvalidStateTransition
from brazier.runtime_api import wire
from brazier.runtime_api.base import (
    FunctionResponse,
    InitError,
    Invocation,
    InvocationResult,
    RuntimeSessionStatistics,
    SessionAborted,
)
from brazier.runtime_api.connection import BodyConsumer, Exchange, HttpConnection, RequestHead
from brazier.runtime_api.endpoints import RUNTIME_ROUTES, Reject
from brazier.runtime_api.routes import NOT_FOUND
from brazier.runtime_api.states import (
    RuntimeEvent,
    RuntimeState,
    RuntimeStateMachine,
    TransitionRefused,
)
from brazier.runtime_api.waiters import Waiters

__all__ = ["RuntimeSession", "open_runtime_session"]

# Connections one runtime may hold open at once. The clients use one (a shell bootstrap's curl a
# new one per request, closed after it); extra ones are dropped as they are accepted.
MAX_CONNECTIONS = 16
_S = RuntimeState
_INVOKABLE = frozenset({_S.STARTED, _S.READY, _S.RESPONSE_SENT})


def open_runtime_session(
    listener: socket.socket,
    *,
    max_payload_size: int = wire.MAX_PAYLOAD_SIZE,
    max_streamed_size: int = wire.MAX_STREAMED_SIZE,
) -> RuntimeSession:
    """A session serving the Runtime API on ``listener``; use it as ``async with ... as s``.

    ``listener`` is bound and listening (inside the sandbox's netns). The session serves a dup of
    it and never closes the caller's socket, so a reset environment can open a new session on the
    same listener. Entering starts serving; leaving calls :meth:`RuntimeSession.aclose`.
    ``max_payload_size`` caps buffered ``/response``, ``/error`` and ``/init/error`` bodies;
    ``max_streamed_size`` caps a ``Lambda-Runtime-Function-Response-Mode: streaming`` body (which
    is buffered for now).
    """
    return RuntimeSession(
        listener, max_payload_size=max_payload_size, max_streamed_size=max_streamed_size
    )


class RuntimeSession:
    """One runtime process incarnation's Runtime API (see ``base.RuntimeSessionProtocol``)."""

    def __init__(
        self, listener: socket.socket, *, max_payload_size: int, max_streamed_size: int
    ) -> None:
        self._listener = listener
        self.max_payload_size = max_payload_size
        self.max_streamed_size = max_streamed_size
        self._machine = RuntimeStateMachine()
        self._server: asyncio.Server | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._connections: set[HttpConnection] = set()
        self._parked: Exchange | None = None  # the parked /next, at most one
        self._pending: Invocation | None = None  # handed to invoke(), not yet delivered
        self._current: Invocation | None = None  # last delivered
        self.current_request_id = ""  # kept after the result, as RIE keeps it
        self._result: asyncio.Future[InvocationResult] | None = None
        self._init_known = False
        self._init_outcome: InitError | None = None
        self._init_waiters: Waiters[InitError | None] = Waiters()
        self._idle_waiters: Waiters[None] = Waiters()
        self._abort_reason: str | None = None
        self._closed = False
        self._n_accepted = self._n_requests = self._n_rejected = self._n_invocations = 0
        self._n_responses = self._n_errors = self._n_init_errors = 0
        self._bytes_in = self._bytes_out = 0  # of closed connections

    # --- lifetime -----------------------------------------------------------------------------
    async def __aenter__(self) -> RuntimeSession:
        loop = asyncio.get_running_loop()
        # The TaskGroup owns any background work of this session (streamed responses later);
        # serving itself needs no task: the loop's accept callback drives the Server.
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        try:
            self._server = await loop.create_server(
                functools.partial(HttpConnection, self), sock=self._listener.dup()
            )
        except BaseException as exc:
            await self._tg.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
        if self._tg is not None:
            tg, self._tg = self._tg, None
            # The body's own exception is not the TaskGroup's business: passing it in would
            # re-raise it wrapped in an ExceptionGroup. Child failures still surface here.
            await tg.__aexit__(None, None, None)

    async def aclose(self) -> None:
        """Stop serving and abort (if not yet terminal). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.abort("session closed")
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def abort(self, reason: str) -> None:
        """Terminal state: fail pending calls with ``SessionAborted(reason)``, drop connections.

        Idempotent (the first reason wins); never raises.
        """
        if self._abort_reason is not None:
            return
        self._abort_reason = reason
        self._machine.transition(RuntimeEvent.ABORT)
        self._pending = None
        self._parked = None
        self._init_waiters.fail(lambda: SessionAborted(reason))
        self._idle_waiters.fail(lambda: SessionAborted(reason))
        if self._result is not None and not self._result.done():
            self._result.set_exception(SessionAborted(reason))
        for conn in list(self._connections):
            conn.abort()

    # --- worker API ---------------------------------------------------------------------------
    async def wait_init(self) -> InitError | None:
        """First ``/next`` -> ``None``; ``/runtime/init/error`` -> the error. Idempotent."""
        self._check_aborted()
        if self._init_known:
            return self._init_outcome
        return await self._init_waiters.wait()

    async def invoke(self, invocation: Invocation) -> InvocationResult:
        """Deliver ``invocation`` and await its result (see ``base.RuntimeSessionProtocol``).

        Allowed before init completes (the event waits for the first ``/next``) and right after
        a result (it waits for the next ``/next``). Cancelling it before delivery withdraws the
        event; after delivery the runtime's result is discarded when it arrives.
        """
        self._check_aborted()
        state = self._machine.state
        if state is _S.INIT_ERROR and self._init_known:
            assert self._init_outcome is not None
            return self._init_outcome
        if self._result is not None:
            raise InvalidStateTransition("an invocation is already in progress")
        if state not in _INVOKABLE and state is not _S.INIT_ERROR:
            raise InvalidStateTransition(f"cannot invoke while the runtime is {state.value}")
        fut: asyncio.Future[InvocationResult] = asyncio.get_running_loop().create_future()
        self._result = fut
        if state is not _S.INIT_ERROR:  # else: the init error body is still uploading
            self._pending = invocation
            if state is _S.READY:
                self._deliver()
        try:
            return await fut
        finally:
            self._result = None
            if self._pending is invocation:
                self._pending = None

    async def wait_idle(self) -> None:
        """Until the runtime is parked on ``/next`` again (``Ready``). Returns at once if so."""
        self._check_aborted()
        if self._machine.state is _S.INIT_ERROR:
            raise SessionAborted("runtime reported an init error")
        if self._machine.state is not _S.READY:
            await self._idle_waiters.wait()

    @property
    def idle(self) -> bool:
        return self._abort_reason is None and self._machine.state is _S.READY

    @property
    def state(self) -> RuntimeState:
        """The runtime's current state (for logs and tests)."""
        return self._machine.state

    def statistics(self) -> RuntimeSessionStatistics:
        """Counter snapshot; O(open connections)."""
        conns = self._connections
        return RuntimeSessionStatistics(
            state=self._machine.state.value,
            connections_accepted=self._n_accepted,
            connections_open=len(conns),
            requests=self._n_requests,
            rejected_requests=self._n_rejected,
            invocations=self._n_invocations,
            responses=self._n_responses,
            function_errors=self._n_errors,
            init_errors=self._n_init_errors,
            bytes_received=self._bytes_in + sum(c.bytes_received for c in conns),
            bytes_sent=self._bytes_out + sum(c.bytes_sent for c in conns),
        )

    # --- connection.Application ---------------------------------------------------------------
    def on_connection(self, conn: HttpConnection, opened: bool) -> None:
        """Track connections so abort/aclose can drop them. Past ``MAX_CONNECTIONS`` open at
        once a new one is dropped at once: each costs the host a descriptor, and a runtime
        needs one or two (a hostile one could otherwise hold as many as its own file limit)."""
        if opened:
            self._n_accepted += 1
            if self._abort_reason is not None or len(self._connections) >= MAX_CONNECTIONS:
                conn.abort()
                return
            self._connections.add(conn)
        else:
            self._connections.discard(conn)
            self._bytes_in += conn.bytes_received
            self._bytes_out += conn.bytes_sent

    def on_request(self, exchange: Exchange, head: RequestHead) -> BodyConsumer:
        """Route the request; the endpoint validates and returns the body consumer."""
        self._n_requests += 1
        route = RUNTIME_ROUTES.resolve(head.method, head.path)
        if isinstance(route, int):
            self._n_rejected += 1
            reply = wire.NOT_FOUND if route == NOT_FOUND else wire.METHOD_NOT_ALLOWED
            return Reject(exchange, reply)
        endpoint, param = route
        consumer = endpoint(self, exchange, head, param)
        if isinstance(consumer, Reject):
            self._n_rejected += 1
        return consumer

    # --- called by the endpoints --------------------------------------------------------------
    def _transition(self, event: RuntimeEvent) -> RuntimeState:
        return self._machine.transition(event)

    def _on_next(self, ex: Exchange) -> None:
        """A complete ``GET /next``: park it, or answer it with the pending/current event."""
        try:
            previous = self._machine.transition(RuntimeEvent.NEXT)
        except TransitionRefused as refused:
            self._n_rejected += 1
            ex.reply(wire.forbidden(refused.message))
            return
        if previous is _S.RUNNING:  # a retried /next: re-deliver the current event (RIE)
            inv = self._current
            assert inv is not None
            ex.reply(wire.next_head(inv), inv.payload)
            return
        # At most one parked /next: a newer one supersedes it (RIE allows Ready->Ready). The
        # newest is the live one when a client re-polls on a new connection; closing the old
        # connection makes a client that still waits on it see EOF and re-poll.
        old, self._parked = self._parked, ex
        if old is not None:
            old.on_gone = None
            old.drop()
        ex.on_gone = self._unpark
        if previous is _S.STARTED:
            self._init_known = True
            self._init_waiters.wake(None)
        self._idle_waiters.wake(None)
        if self._pending is not None:
            self._deliver()

    def _unpark(self, ex: Exchange) -> None:
        if self._parked is ex:
            self._parked = None

    def _deliver(self) -> None:
        """Hand the pending event to the parked ``/next`` if it is live: Ready -> Running."""
        inv = self._pending
        ex = self._parked
        assert inv is not None
        if ex is None or not ex.alive:
            return
        self._machine.transition(RuntimeEvent.DELIVER)
        self._parked = None
        self._pending = None
        self._current = inv
        self.current_request_id = inv.request_id
        self._n_invocations += 1
        ex.on_gone = None
        ex.reply(wire.next_head(inv), inv.payload)

    def _complete(self, result: InvocationResult) -> None:
        """The result of the current invoke is known: ->ResponseSent, wake ``invoke``."""
        if self._machine.state not in (_S.INVOCATION_RESPONSE, _S.INVOCATION_ERROR_RESPONSE):
            return  # aborted meanwhile, or already completed (oversize, then truncated)
        self._machine.transition(RuntimeEvent.RESPONSE_SENT)
        if isinstance(result, FunctionResponse):
            self._n_responses += 1
        else:
            self._n_errors += 1
        fut = self._result
        if fut is not None and not fut.done():
            fut.set_result(result)

    def _init_failed(self, error: InitError) -> None:
        """``/runtime/init/error`` arrived (state is already ``InitError``)."""
        if self._machine.state is not _S.INIT_ERROR or self._init_known:
            return
        self._n_init_errors += 1
        self._init_known = True
        self._init_outcome = error
        self._init_waiters.wake(error)
        self._pending = None
        if self._result is not None and not self._result.done():
            self._result.set_result(error)
        self._idle_waiters.fail(lambda: SessionAborted("runtime reported an init error"))

    # --- helpers ------------------------------------------------------------------------------
    def _check_aborted(self) -> None:
        if self._abort_reason is not None:
            raise SessionAborted(self._abort_reason)
