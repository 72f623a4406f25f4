"""The Runtime API on the wire: exact statuses, headers and bodies (lambda-interfaces.md §1)."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from brazier.runtime_api import (
    MAX_PAYLOAD_SIZE,
    FunctionError,
    FunctionResponse,
    InitError,
    InvocationResult,
    RuntimeSession,
)

from .helpers import V1, RawClient, invocation, one_shot, run, serve, wait_state

ACCEPTED = {"status": "OK"}


def test_next_delivers_payload_and_all_headers() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            nxt = asyncio.create_task(client.next())
            assert await session.wait_init() is None
            inv = invocation(
                "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
                b'{"hello": "w\xc3\xb6rld"}',
                deadline_ms=1542409706888,
                trace_id="Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
                client_context='{"custom":{"a":"b"}}',
                cognito_identity='{"cognitoIdentityId":"id","cognitoIdentityPoolId":"pool"}',
                tenant_id="tenant-7",
                content_type="application/json",
            )
            invoke = asyncio.create_task(session.invoke(inv))
            reply = await nxt
            assert reply.status == 200
            assert reply.body == inv.payload
            h = reply.headers
            assert h["lambda-runtime-aws-request-id"] == inv.request_id
            assert h["lambda-runtime-deadline-ms"] == "1542409706888"
            assert h["lambda-runtime-invoked-function-arn"] == inv.invoked_function_arn
            assert h["lambda-runtime-trace-id"] == inv.trace_id
            assert h["lambda-runtime-client-context"] == inv.client_context
            assert h["lambda-runtime-cognito-identity"] == inv.cognito_identity
            assert h["lambda-runtime-aws-tenant-id"] == "tenant-7"
            assert h["content-type"] == "application/json"
            assert h["content-length"] == str(len(inv.payload))
            resp = await client.respond(
                inv.request_id, b'{"r":1}', headers=[("Content-Type", "application/json")]
            )
            assert (resp.status, resp.json()) == (202, ACCEPTED)
            assert resp.headers["content-type"] == "application/json"
            assert await invoke == FunctionResponse(b'{"r":1}', "application/json")
            await client.close()

    run(body)


def test_optional_headers_absent_when_unset() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            nxt = asyncio.create_task(client.next())
            invoke = asyncio.create_task(session.invoke(invocation(content_type="text/plain")))
            reply = await nxt
            for name in (
                "lambda-runtime-trace-id",
                "lambda-runtime-client-context",
                "lambda-runtime-cognito-identity",
                "lambda-runtime-aws-tenant-id",
            ):
                assert name not in reply.headers
            assert reply.headers["content-type"] == "text/plain"
            await client.respond("req-1")
            await invoke
            await client.close()

    run(body)


def _forbidden(current: str, target: str) -> dict[str, str]:
    return {
        "errorMessage": f"State transition from {current} to {target} failed for runtime. "
        "Error: State transition is not allowed",
        "errorType": "InvalidStateTransition",
    }


INVALID_ID = {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}


async def _deliver(
    session: RuntimeSession, client: RawClient, request_id: str = "req-1", payload: bytes = b"{}"
) -> asyncio.Task[InvocationResult]:
    """Park a /next on ``client``, invoke, and return the invoke task once /next got the event."""
    nxt = asyncio.create_task(client.next())
    invoke = asyncio.create_task(session.invoke(invocation(request_id, payload)))
    reply = await nxt
    assert reply.status == 200
    return invoke


def test_wrong_request_id_is_400_and_checked_before_the_state() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            # No invoke yet: every id is wrong (RIE's current id is empty).
            for path in ("response", "error"):
                r = await client.request("POST", f"{V1}/invocation/req-1/{path}", b"{}")
                assert (r.status, r.json()) == (400, INVALID_ID)
                assert r.headers["content-type"] == "application/json"
            invoke = await _deliver(session, client)
            r = await client.respond("other-id")
            assert (r.status, r.json()) == (400, INVALID_ID)
            r = await client.error("other-id")
            assert (r.status, r.json()) == (400, INVALID_ID)
            assert (await client.respond("req-1")).status == 202
            assert await invoke == FunctionResponse(b'"ok"', None)
            await client.close()

    run(body)


def test_state_machine_over_http_exact_403s() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            a = await RawClient.connect(port)
            b = await RawClient.connect(port)
            invoke = await _deliver(session, a, "req-1", b'{"x":1}')
            assert session.state.value == "Running"
            # /next while Running re-delivers the current event (RIE's Running.Ready is a no-op).
            again = await b.next()
            assert again.status == 200
            assert again.headers["lambda-runtime-aws-request-id"] == "req-1"
            assert again.body == b'{"x":1}'
            # /init/error after init.
            r = await b.request("POST", f"{V1}/init/error", b"{}")
            assert (r.status, r.json()) == (403, _forbidden("Running", "InitError"))
            # A response, then a second response and an error for the same id.
            assert (await a.respond("req-1")).status == 202
            await invoke
            r = await a.respond("req-1")
            assert (r.status, r.json()) == (
                403,
                _forbidden("RuntimeResponseSentState", "InvocationResponse"),
            )
            r = await a.error("req-1")
            assert (r.status, r.json()) == (
                403,
                _forbidden("RuntimeResponseSentState", "InvocationErrorResponse"),
            )
            # Back to Ready: the old id still passes the id check, then the state refuses.
            nxt = asyncio.create_task(a.next())
            await wait_state(session, "Ready")
            r = await b.respond("req-1")
            assert (r.status, r.json()) == (403, _forbidden("Ready", "InvocationResponse"))
            r = await b.request("POST", f"{V1}/init/error", b"{}")
            assert (r.status, r.json()) == (403, _forbidden("Ready", "InitError"))
            # A second /next is allowed (RIE Ready.Ready): it supersedes the parked one, whose
            # connection is closed.
            nxt_b = asyncio.create_task(b.next())
            with pytest.raises(asyncio.IncompleteReadError):
                await nxt
            invoke = asyncio.create_task(session.invoke(invocation("req-2")))
            assert (await nxt_b).headers["lambda-runtime-aws-request-id"] == "req-2"
            # The body of /response is being uploaded: state InvocationResponse.
            await b.send(
                f"POST {V1}/invocation/req-2/response HTTP/1.1\r\nContent-Length: 10\r\n\r\n"
                "12345".encode()
            )
            await wait_state(session, "InvocationResponse")
            c = await RawClient.connect(port)
            r = await c.next()
            assert (r.status, r.json()) == (403, _forbidden("InvocationResponse", "Ready"))
            r = await c.error("req-2")
            assert (r.status, r.json()) == (
                403,
                _forbidden("InvocationResponse", "InvocationErrorResponse"),
            )
            await b.send(b"67890")
            assert (await b.read_reply()).status == 202
            assert await invoke == FunctionResponse(b"1234567890", None)
            nxt = asyncio.create_task(c.next())
            await session.wait_idle()
            nxt.cancel()
            for client in (a, b, c):
                await client.close()

    run(body)


def test_error_body_verbatim_and_error_types() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            cases = [
                (None, "Runtime.Unknown"),
                ("Function.MyError", "Function.MyError"),
                ("Runtime.NoSuchHandler", "Runtime.NoSuchHandler"),
                ("Unhandled", "Runtime.Unknown"),
                ("Function.lower", "Function.Unknown"),
            ]
            raw = b'{"errorMessage":"x","errorType":"E","stackTrace":[],"trace":["a"]}'
            for i, (header, internal) in enumerate(cases):
                invoke = await _deliver(session, client, f"r{i}")
                headers = [("Content-Type", "application/vnd.aws.lambda.error+json")]
                if header is not None:
                    headers.append(("Lambda-Runtime-Function-Error-Type", header))
                r = await client.error(f"r{i}", raw, headers=headers)
                assert (r.status, r.json()) == (202, ACCEPTED)
                assert await invoke == FunctionError(
                    raw, internal, header, "application/vnd.aws.lambda.error+json"
                )
            await client.close()

    run(body)


def test_init_error_202_then_refuses_next() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            raw = (
                b'{"errorMessage":"Runtime startup fails","errorType":"Exception",'
                b'"requestId":"","stackTrace":[]}'
            )
            r = await client.request(
                "POST",
                f"{V1}/init/error",
                raw,
                [("Lambda-Runtime-Function-Error-Type", "Runtime.ImportModuleError")],
            )
            assert (r.status, r.json()) == (202, ACCEPTED)
            outcome = await session.wait_init()
            assert outcome == InitError(
                raw, "Runtime.ImportModuleError", "Runtime.ImportModuleError", "application/json"
            )
            assert await session.wait_init() is outcome  # idempotent
            assert await session.invoke(invocation()) is outcome
            r = await client.next()
            assert (r.status, r.json()) == (403, _forbidden("InitError", "Ready"))
            r = await client.request("POST", f"{V1}/init/error", raw)
            assert (r.status, r.json()) == (403, _forbidden("InitError", "InitError"))
            assert session.statistics().init_errors == 1
            await client.close()

    run(body)


def test_init_error_non_json_body_is_octet_stream() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            r = await one_shot(port, "POST", f"{V1}/init/error", b"not json")
            assert r.status == 202
            outcome = await session.wait_init()
            assert outcome == InitError(
                b"not json", "Runtime.Unknown", None, "application/octet-stream"
            )

    run(body)


TOO_LARGE_RUNTIME = {
    "errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).",
    "errorType": "RequestEntityTooLarge",
}
TOO_LARGE_INVOKER = (
    b'{"errorMessage":"Response payload size exceeded maximum allowed payload size '
    b'(6291556 bytes).","errorType":"Function.ResponseSizeTooLarge"}'
)


def test_payload_limit_both_sides() -> None:
    assert MAX_PAYLOAD_SIZE == 6291556

    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            # Exactly at the limit: accepted.
            invoke = await _deliver(session, client, "ok")
            big = b"x" * MAX_PAYLOAD_SIZE
            assert (await client.respond("ok", big)).status == 202
            result = await invoke
            assert isinstance(result, FunctionResponse) and result.body == big
            # One byte over: 413 to the runtime, ResponseSizeTooLarge to the invoker.
            invoke = await _deliver(session, client, "big")
            r = await client.respond("big", big + b"y")
            assert (r.status, r.json()) == (413, TOO_LARGE_RUNTIME)
            assert await invoke == FunctionError(TOO_LARGE_INVOKER, "Function.ResponseSizeTooLarge")
            # The connection is still usable, and the state moved on.
            r = await client.respond("big")
            assert r.status == 403
            # Oversized chunked upload: the invoker learns before the upload ends.
            invoke = await _deliver(session, client, "chunked")
            await client.send(
                f"POST {V1}/invocation/chunked/response HTTP/1.1\r\n"
                "Transfer-Encoding: chunked\r\n\r\n".encode()
            )
            chunk = b"z" * (1024 * 1024)
            for _ in range(7):
                await client.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            result = await invoke
            assert result == FunctionError(TOO_LARGE_INVOKER, "Function.ResponseSizeTooLarge")
            await client.send(b"0\r\n\r\n")
            r = await client.read_reply()
            assert (r.status, r.json()) == (413, TOO_LARGE_RUNTIME)
            await client.close()

    run(body)


def test_keep_alive_single_connection() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            for i in range(20):
                invoke = await _deliver(session, client, f"id-{i}", b'{"i":%d}' % i)
                assert (await client.respond(f"id-{i}", b"%d" % i)).status == 202
                assert await invoke == FunctionResponse(b"%d" % i, None)
            stats = session.statistics()
            assert stats.connections_accepted == 1
            assert stats.invocations == stats.responses == 20
            await client.close()

    run(body)


def test_new_connection_per_call() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            for i in range(5):
                nxt = asyncio.create_task(one_shot(port, "GET", f"{V1}/invocation/next"))
                invoke = asyncio.create_task(session.invoke(invocation(f"id-{i}")))
                r = await nxt
                assert r.status == 200
                r = await one_shot(port, "POST", f"{V1}/invocation/id-{i}/response", b"ok")
                assert r.status == 202
                assert await invoke == FunctionResponse(b"ok", None)
            await asyncio.sleep(0.05)
            stats = session.statistics()
            assert stats.connections_accepted == 10
            assert stats.connections_open == 0

    run(body)


def test_chunked_body_with_trailers() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            invoke = await _deliver(session, client, "c1")
            await client.send(
                f"POST {V1}/invocation/c1/response HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                "Content-Type: text/plain\r\nTrailer: X-Checksum\r\n\r\n"
                "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Checksum: abc\r\n\r\n".encode()
            )
            r = await client.read_reply()
            assert (r.status, r.json()) == (202, ACCEPTED)
            assert await invoke == FunctionResponse(b"hello world", "text/plain")
            await client.close()

    run(body)


def test_streaming_mode_error_trailers() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            invoke = await _deliver(session, client, "s1")
            error = b'{"errorType":"Error","errorMessage":"mid-stream","trace":[]}'
            await client.send(
                f"POST {V1}/invocation/s1/response HTTP/1.1\r\n"
                "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
                "Transfer-Encoding: chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\n"
                "Content-Type: application/octet-stream\r\n\r\n"
                "4\r\npart\r\n0\r\n"
                "Lambda-Runtime-Function-Error-Type: Function.StreamError\r\n"
                f"Lambda-Runtime-Function-Error-Body: {base64.b64encode(error).decode()}\r\n"
                "\r\n".encode()
            )
            assert (await client.read_reply()).status == 202
            assert await invoke == FunctionError(
                error, "Function.StreamError", "Function.StreamError", "application/json"
            )
            # Without error trailers a streamed response is a plain (buffered) response.
            invoke = await _deliver(session, client, "s2")
            r = await client.respond(
                "s2", b"data", headers=[("Lambda-Runtime-Function-Response-Mode", "streaming")]
            )
            assert r.status == 202
            assert await invoke == FunctionResponse(b"data", None)
            await client.close()

    run(body)


@pytest.mark.parametrize(
    ("trailer", "message"),
    [
        (
            "Lambda-Runtime-Function-Error-Body: not*base64!\r\n",
            "RequestId: {id} Error: the runtime's Lambda-Runtime-Function-Error-Body trailer is"
            " not valid base64",
        ),
        ("Lambda-Runtime-Function-Error-Body: \r\n", "RequestId: {id} Error: the runtime"
         " reported Function.StreamError mid-stream"),
        ("", "RequestId: {id} Error: the runtime reported Function.StreamError mid-stream"),
    ],
)  # fmt: skip
def test_streamed_error_without_a_usable_body(trailer: str, message: str) -> None:
    # The invoker gets the runtime's error type (as RIE keeps it) and a JSON error payload,
    # never an empty one.
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            invoke = await _deliver(session, client, "s3")
            await client.send(
                f"POST {V1}/invocation/s3/response HTTP/1.1\r\n"
                "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
                "Transfer-Encoding: chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\n"
                "Content-Type: application/octet-stream\r\n\r\n"
                "4\r\npart\r\n0\r\n"
                f"Lambda-Runtime-Function-Error-Type: Function.StreamError\r\n{trailer}"
                "\r\n".encode()
            )
            assert (await client.read_reply()).status == 202
            result = await invoke
            assert isinstance(result, FunctionError)
            assert result.error_type == "Function.StreamError"
            assert result.content_type == "application/json"
            assert json.loads(result.body) == {
                "errorType": "Function.StreamError",
                "errorMessage": message.format(id="s3"),
            }
            await client.close()

    run(body)


def test_invalid_response_mode() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            invoke = await _deliver(session, client, "m1")
            r = await client.respond(
                "m1", b"data", headers=[("Lambda-Runtime-Function-Response-Mode", "buffered")]
            )
            assert (r.status, r.json()) == (
                400,
                {
                    "errorMessage": "Invalid function response mode",
                    "errorType": "InvalidFunctionResponseMode",
                },
            )
            result = await invoke
            assert isinstance(result, FunctionError)
            assert result.error_type == "Runtime.InvalidResponseModeHeader"
            assert json.loads(result.body)["errorType"] == "Runtime.InvalidResponseModeHeader"
            nxt = asyncio.create_task(client.next())
            await session.wait_idle()
            nxt.cancel()
            await client.close()

    run(body)


def test_truncated_upload_half_close_gets_400() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            invoke = await _deliver(session, client, "t1")
            await client.send(
                f"POST {V1}/invocation/t1/response HTTP/1.1\r\nContent-Length: 100\r\n\r\n"
                "only-part".encode()
            )
            client.writer.write_eof()
            r = await client.read_reply()
            assert (r.status, r.json()) == (
                400,
                {
                    "errorMessage": "HTTP request detected as truncated",
                    "errorType": "TruncatedHTTPRequest",
                },
            )
            result = await invoke
            assert isinstance(result, FunctionError)
            assert result.error_type == "Runtime.TruncatedResponse"
            assert json.loads(result.body)["errorType"] == "Runtime.TruncatedResponse"
            assert await client.at_eof()
            await client.close()

    run(body)


def test_truncated_upload_connection_reset() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            invoke = await _deliver(session, client, "t2")
            await client.send(
                f"POST {V1}/invocation/t2/error HTTP/1.1\r\nContent-Length: 100\r\n\r\nab".encode()
            )
            await client.close()
            result = await invoke
            assert isinstance(result, FunctionError)
            assert result.error_type == "Runtime.TruncatedResponse"

    run(body)


def test_unknown_paths_and_methods() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            for method, path, status in [
                ("GET", "/", 404),
                ("GET", "/2018-06-01/runtime/invocation", 404),
                ("POST", f"{V1}/invocation/a/b/response", 404),
                ("POST", f"{V1}/invocation//response", 404),
                ("POST", "/2020-01-01/extension/register", 404),
                ("GET", "/2020-01-01/extension/event/next", 404),
                ("PUT", "/2022-07-01/telemetry", 404),
                ("POST", f"{V1}/invocation/next", 405),
                ("GET", f"{V1}/invocation/x/response", 405),
                ("GET", f"{V1}/init/error", 405),
            ]:
                r = await client.request(method, path, b"" if method != "GET" else None)
                assert r.status == status, (method, path)
                assert r.headers["content-type"] == "application/json"
            assert session.state.value == "Started"
            assert session.statistics().rejected_requests == 10
            # A query string does not change the route.
            nxt = asyncio.create_task(client.request("GET", f"{V1}/invocation/next?x=1"))
            assert await session.wait_init() is None
            nxt.cancel()
            await client.close()

    run(body)


def test_expect_100_continue() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            invoke = await _deliver(session, client, "e1")
            await client.send(
                f"POST {V1}/invocation/e1/response HTTP/1.1\r\nContent-Length: 3\r\n"
                "Expect: 100-continue\r\n\r\n".encode()
            )
            assert await client.reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            await client.send(b"abc")
            assert (await client.read_reply()).status == 202
            assert await invoke == FunctionResponse(b"abc", None)
            await client.close()

    run(body)


def test_malformed_request_and_oversized_head_close_the_connection() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            await client.send(b"NOT HTTP AT ALL\r\n\r\n")
            r = await client.read_reply()
            assert r.status == 400
            assert await client.at_eof()
            await client.close()
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
            r = await client.read_reply()
            assert r.status == 431
            assert await client.at_eof()
            await client.close()
            assert session.state.value == "Started"

    run(body)


def test_pipelined_requests_are_answered_in_order() -> None:
    async def body() -> None:
        async with serve() as (_, port):
            client = await RawClient.connect(port)
            await client.send(
                f"GET /a HTTP/1.1\r\n\r\nPOST {V1}/invocation/x/response HTTP/1.1\r\n"
                "Content-Length: 0\r\n\r\nGET /b HTTP/1.1\r\n\r\n".encode()
            )
            statuses = [(await client.read_reply()).status for _ in range(3)]
            assert statuses == [404, 400, 404]
            await client.close()

    run(body)


def _response_then_next(request_id: str, body: bytes = b'"ok"') -> bytes:
    return (
        (
            f"POST {V1}/invocation/{request_id}/response HTTP/1.1\r\nContent-Length: {len(body)}"
            f"\r\n\r\n"
        ).encode()
        + body
        + f"GET {V1}/invocation/next HTTP/1.1\r\n\r\n".encode()
    )


async def _answered_with_pipelined_next(session: RuntimeSession, port: int) -> RawClient:
    """A client that answered invoke "p1" and asked for the next event in the same write."""
    client = await RawClient.connect(port)
    invoke = await _deliver(session, client, "p1")
    await client.send(_response_then_next("p1"))
    assert await invoke == FunctionResponse(b'"ok"', None)
    await wait_state(session, "Ready")
    return client


def test_a_result_pipelined_with_next_is_answered_with_the_next_event() -> None:
    """The 202 to a result waits for the pipelined /next's event; both arrive in one write."""

    async def body() -> None:
        async with serve() as (session, port):
            client = await _answered_with_pipelined_next(session, port)
            with pytest.raises(TimeoutError):  # held: nothing to read yet
                await asyncio.wait_for(client.reader.read(1), 0.1)
            second = asyncio.create_task(session.invoke(invocation("p2", b"[2]")))
            accepted = await client.read_reply()
            assert (accepted.status, accepted.json()) == (202, ACCEPTED)
            event = await client.read_reply()
            assert (event.status, event.body) == (200, b"[2]")
            assert event.headers["lambda-runtime-aws-request-id"] == "p2"
            assert (await client.respond("p2")).status == 202  # not pipelined: answered at once
            assert await second == FunctionResponse(b'"ok"', None)
            await client.close()

    run(body)


def test_a_held_202_is_written_before_its_connection_closes() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await _answered_with_pipelined_next(session, port)
            # A /next on another connection supersedes the parked one, which is closed.
            other = await RawClient.connect(port)
            await other.send_request("GET", f"{V1}/invocation/next")
            accepted = await client.read_reply()
            assert (accepted.status, accepted.json()) == (202, ACCEPTED)
            assert await client.at_eof()
            await client.close()
            await other.close()

    run(body)


def test_a_pipelined_error_reply_is_not_held() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            client = await RawClient.connect(port)
            await _deliver(session, client, "p1")
            await client.send(_response_then_next("wrong-id"))
            r = await asyncio.wait_for(client.read_reply(), 2)
            assert r.status == 400
            await client.close()

    run(body)


def test_connection_close_request_is_honoured() -> None:
    async def body() -> None:
        async with serve() as (session, port):
            r = await one_shot(port, "GET", "/nope")
            assert r.status == 404
            await asyncio.sleep(0.05)
            assert session.statistics().connections_open == 0

    run(body)


def test_streamed_response_has_its_own_larger_cap() -> None:
    async def body() -> None:
        async with serve(max_streamed_size=MAX_PAYLOAD_SIZE + 1000) as (session, port):
            client = await RawClient.connect(port)
            streaming = [("Lambda-Runtime-Function-Response-Mode", "streaming")]
            invoke = await _deliver(session, client, "s1")
            big = b"s" * (MAX_PAYLOAD_SIZE + 1000)
            assert (await client.respond("s1", big, headers=streaming)).status == 202
            assert await invoke == FunctionResponse(big, None)
            invoke = await _deliver(session, client, "s2")
            r = await client.respond("s2", big + b"!", headers=streaming)
            assert (r.status, r.json()) == (413, TOO_LARGE_RUNTIME)
            assert await invoke == FunctionError(TOO_LARGE_INVOKER, "Function.ResponseSizeTooLarge")
            await client.close()

    run(body)
