"""The worker-facing session API: init, invoke, idle, abort, close, statistics."""

from __future__ import annotations

import asyncio

import pytest

from brazier.model.errors import InvalidStateTransition
from brazier.runtime_api import (
    FunctionResponse,
    InitError,
    Invocation,
    RuntimeSessionProtocol,
    SessionAborted,
    normalize_error_type,
    open_runtime_session,
)
from brazier.runtime_api.server import MAX_CONNECTIONS

from .helpers import (
    V1,
    RawClient,
    invocation,
    make_listener,
    run,
    serve,
    wait_state,
)


def test_session_satisfies_the_protocol() -> None:
    async def body() -> None:
        async with serve() as (session, _):
            proto: RuntimeSessionProtocol = session
            assert proto.statistics().state == "Started"

    run(body)


def test_invoke_before_first_next_is_delivered_when_it_arrives() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            invoke = asyncio.create_task(session.invoke(invocation("early")))
            init = asyncio.create_task(session.wait_init())
            await asyncio.sleep(0.01)
            assert not init.done() and not invoke.done()
            client = await RawClient.connect(port)
            reply = await client.next()
            assert reply.headers["lambda-runtime-aws-request-id"] == "early"
            assert await init is None
            await client.respond("early", b"1")
            assert await invoke == FunctionResponse(b"1", None)
            await client.close()

    run(body)


def test_second_concurrent_invoke_is_a_programming_error() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            first = asyncio.create_task(session.invoke(invocation("a")))
            await asyncio.sleep(0)
            with pytest.raises(InvalidStateTransition):
                await session.invoke(invocation("b"))
            client = await RawClient.connect(port)
            await client.next()
            # Running (delivered, no result yet): still refused.
            with pytest.raises(InvalidStateTransition):
                await session.invoke(invocation("b"))
            await client.respond("a")
            await first
            await client.close()

    run(body)


def test_wait_idle_is_the_next_after_the_result() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            nxt = asyncio.create_task(client.next())
            await session.wait_init()
            await session.wait_idle()  # parked on /next: idle at once
            invoke = asyncio.create_task(session.invoke(invocation()))
            await nxt
            idle = asyncio.create_task(session.wait_idle())
            await client.respond("req-1")
            await invoke
            await asyncio.sleep(0.01)
            assert not idle.done()  # responded, but not yet back on /next
            nxt = asyncio.create_task(client.next())
            await idle
            assert session.state.value == "Ready"
            nxt.cancel()
            await client.close()

    run(body)


def test_invoke_right_after_a_result_waits_for_the_next_next() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            invoke = asyncio.create_task(session.invoke(invocation("1")))
            await client.next()
            await client.respond("1")
            await invoke
            assert session.state.value == "RuntimeResponseSentState"
            invoke = asyncio.create_task(session.invoke(invocation("2")))
            reply = await client.next()
            assert reply.headers["lambda-runtime-aws-request-id"] == "2"
            await client.respond("2")
            await invoke
            await client.close()

    run(body)


def test_abort_fails_everything_and_drops_connections() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            invoke = asyncio.create_task(session.invoke(invocation()))
            await client.next()
            idle = asyncio.create_task(session.wait_idle())
            await asyncio.sleep(0)
            session.abort("Task timed out")
            session.abort("ignored: first reason wins")
            with pytest.raises(SessionAborted, match="Task timed out"):
                await invoke
            with pytest.raises(SessionAborted):
                await idle
            with pytest.raises(SessionAborted):
                await session.wait_init()
            with pytest.raises(SessionAborted):
                await session.invoke(invocation("x"))
            assert session.state.value == "Aborted"
            assert await client.at_eof()
            await client.close()
            # A late runtime call on a fresh connection is dropped at once.
            late = await RawClient.connect(port)
            assert await late.at_eof()
            await late.close()

    run(body)


def test_abort_before_init_fails_wait_init() -> None:
    async def body() -> None:
        async with serve() as (session, _):
            init = asyncio.create_task(session.wait_init())
            await asyncio.sleep(0)
            session.abort("process exited")
            with pytest.raises(SessionAborted, match="process exited"):
                await init

    run(body)


def test_cancelled_invoke_before_delivery_withdraws_the_event() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            invoke = asyncio.create_task(session.invoke(invocation("gone")))
            await asyncio.sleep(0)
            invoke.cancel()
            with pytest.raises(asyncio.CancelledError):
                await invoke
            client = await RawClient.connect(port)
            nxt = asyncio.create_task(client.next())
            await session.wait_init()
            await asyncio.sleep(0.01)
            assert not nxt.done()
            assert session.statistics().invocations == 0
            # And a new invoke goes through.
            invoke = asyncio.create_task(session.invoke(invocation("new")))
            assert (await nxt).headers["lambda-runtime-aws-request-id"] == "new"
            await client.respond("new")
            await invoke
            await client.close()

    run(body)


def test_timeout_then_late_response_is_accepted_and_dropped() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            invoke = asyncio.create_task(session.invoke(invocation("slow")))
            await client.next()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await invoke
            r = await client.respond("slow")
            assert r.status == 202
            invoke = asyncio.create_task(session.invoke(invocation("fast")))
            await client.next()
            await client.respond("fast", b"2")
            assert await invoke == FunctionResponse(b"2", None)
            await client.close()

    run(body)


def test_dead_parked_next_is_unparked() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            dead = await RawClient.connect(port)
            await dead.send_request("GET", f"{V1}/invocation/next")
            await session.wait_init()
            await dead.close()
            await asyncio.sleep(0.02)
            invoke = asyncio.create_task(session.invoke(invocation("x")))
            await asyncio.sleep(0.01)
            assert session.statistics().invocations == 0
            live = await RawClient.connect(port)
            assert (await live.next()).headers["lambda-runtime-aws-request-id"] == "x"
            await live.respond("x")
            await invoke
            await live.close()

    run(body)


def test_aclose_is_idempotent_and_leaves_the_listener_open() -> None:
    async def body() -> None:
        listener = make_listener()
        port = listener.getsockname()[1]
        try:
            async with open_runtime_session(listener) as session:
                client = await RawClient.connect(port)
                nxt = asyncio.create_task(client.next())
                await session.wait_init()
                await session.aclose()
                await session.aclose()
                assert session.state.value == "Aborted"
                with pytest.raises(asyncio.IncompleteReadError):
                    await nxt
                await client.close()
            assert listener.fileno() >= 0
            # A new incarnation (re-init after a reset) on the same listener.
            async with open_runtime_session(listener) as again:
                client = await RawClient.connect(port)
                nxt = asyncio.create_task(client.next())
                assert await again.wait_init() is None
                nxt.cancel()
                await client.close()
        finally:
            listener.close()

    run(body)


def test_body_exception_propagates_unwrapped() -> None:
    async def body() -> None:
        with pytest.raises(KeyError):
            async with serve():
                raise KeyError("x")

    run(body)


def test_statistics_counts() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            await client.request("GET", "/nope")
            invoke = asyncio.create_task(session.invoke(invocation(payload=b"12345")))
            await client.next()
            await client.error("req-1", b"{}")
            await invoke
            await wait_state(session, "RuntimeResponseSentState")
            stats = session.statistics()
            assert stats.state == "RuntimeResponseSentState"
            assert stats.connections_accepted == stats.connections_open == 1
            assert stats.requests == 3
            assert stats.rejected_requests == 1
            assert stats.invocations == 1
            assert stats.responses == 0
            assert stats.function_errors == 1
            assert stats.bytes_received > 0 and stats.bytes_sent > 5
            await client.close()

    run(body)


def test_invocation_rejects_header_injection() -> None:
    base = {"payload": b"{}", "deadline_ms": 1, "invoked_function_arn": "arn"}
    with pytest.raises(ValueError, match="CR or LF"):
        Invocation(request_id="a", trace_id="x\r\nEvil: 1", **base)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="request_id"):
        Invocation(request_id="a/b", **base)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="request_id"):
        Invocation(request_id="", **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "Runtime.Unknown"),
        ("Runtime.HandlerNotFound", "Runtime.HandlerNotFound"),
        ("Function.ResponseSizeTooLarge", "Function.ResponseSizeTooLarge"),
        ("Function.x", "Function.Unknown"),
        ("Function.", "Function.Unknown"),
        ("Unhandled", "Runtime.Unknown"),
        ("Runtime.Bad-Name", "Runtime.Unknown"),
        ("Sandbox.Timedout", "Runtime.Unknown"),
    ],
)
def test_normalize_error_type(header: str | None, expected: str) -> None:
    assert normalize_error_type(header) == expected


def test_invoke_while_init_error_body_uploads_gets_the_init_error() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            await client.send(
                f"POST {V1}/init/error HTTP/1.1\r\nContent-Length: 4\r\n\r\n{{".encode()
            )
            await wait_state(session, "InitError")
            invoke = asyncio.create_task(session.invoke(invocation()))
            await asyncio.sleep(0.01)
            assert not invoke.done()
            await client.send(b'"}\n')
            assert (await client.read_reply()).status == 202
            result = await invoke
            assert isinstance(result, InitError)
            assert result.body == b'{"}\n'
            await client.close()

    run(body)


def test_connections_past_the_limit_are_dropped_and_the_runtime_still_served() -> None:
    """A runtime that opens connection after connection holds at most MAX_CONNECTIONS of the
    host's descriptors; the rest are closed as they arrive, and the API keeps working."""

    async def body() -> tuple[int, int, bytes]:
        async with serve() as (session, port):
            clients = [await RawClient.connect(port) for _ in range(MAX_CONNECTIONS + 10)]
            await asyncio.sleep(0.1)
            dropped = sum([await c.at_eof() for c in clients[MAX_CONNECTIONS:]])
            open_now = session.statistics().connections_open
            nxt = asyncio.create_task(clients[0].next())
            invoke = asyncio.create_task(session.invoke(invocation()))
            reply = await nxt
            await clients[0].respond("req-1", b'"fine"')
            outcome = await invoke
            for c in clients:
                await c.close()
            assert reply.status == 200
            return dropped, open_now, outcome.body  # type: ignore[union-attr]

    dropped, open_now, result = run(body)
    assert dropped == 10
    assert open_now == MAX_CONNECTIONS
    assert result == b'"fine"'
