"""Shared helpers: a listener on 127.0.0.1:0, a running session, and a raw HTTP/1.1 client that
lets a test control every byte (chunking, trailers, truncation, keep-alive)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from brazier.runtime_api import Invocation, RuntimeSession, open_runtime_session

T = TypeVar("T")
V1 = "/2018-06-01/runtime"


# Which event loop ``run`` uses; conftest.py parametrizes every test over both.
LOOP = {"kind": "asyncio"}


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async test body on a fresh loop (asyncio or uvloop), with a hard timeout."""

    async def main() -> T:
        async with asyncio.timeout(60):
            return await fn()

    if LOOP["kind"] == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def make_listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@asynccontextmanager
async def serve(**kwargs: Any) -> AsyncIterator[tuple[RuntimeSession, int]]:
    listener = make_listener()
    try:
        async with open_runtime_session(listener, **kwargs) as session:
            yield session, listener.getsockname()[1]
    finally:
        listener.close()


def invocation(request_id: str = "req-1", payload: bytes = b'{"k":1}', **kw: Any) -> Invocation:
    kw.setdefault("deadline_ms", 1_700_000_000_000)
    kw.setdefault("invoked_function_arn", "arn:aws:lambda:us-east-1:123456789012:function:f")
    return Invocation(request_id=request_id, payload=payload, **kw)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """One keep-alive connection speaking raw HTTP/1.1."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1:9001"]
        head += [f"{k}: {v}" for k, v in headers]
        if body is not None:
            head.append(f"Content-Length: {len(body)}")
        await self.send(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))

    async def read_reply(self) -> Reply:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Reply(status, headers, body)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Reply:
        await self.send_request(method, path, body, headers)
        return await self.read_reply()

    async def next(self) -> Reply:
        return await self.request("GET", f"{V1}/invocation/next")

    async def respond(self, request_id: str, body: bytes = b'"ok"', **kw: Any) -> Reply:
        return await self.request("POST", f"{V1}/invocation/{request_id}/response", body, **kw)

    async def error(self, request_id: str, body: bytes = b"{}", **kw: Any) -> Reply:
        return await self.request("POST", f"{V1}/invocation/{request_id}/error", body, **kw)

    async def at_eof(self) -> bool:
        try:
            data = await asyncio.wait_for(self.reader.read(1), 2)
        except (ConnectionError, TimeoutError):
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionError):
            await self.writer.wait_closed()


async def one_shot(port: int, method: str, path: str, body: bytes | None = None) -> Reply:
    """A request on its own connection with ``Connection: close`` (curl style)."""
    client = await RawClient.connect(port)
    try:
        return await client.request(method, path, body, [("Connection", "close")])
    finally:
        await client.close()


async def wait_state(session: RuntimeSession, name: str) -> None:
    """Poll until the session reaches ``name`` (the state has no public change event)."""
    for _ in range(5000):
        if session.state.value == name:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"state stayed {session.state.value}, wanted {name}")
