"""A minimal threaded fake of the Lambda Runtime API (2018-06-01) for testing runtime clients.

It queues invocations, answers ``/next`` from the queue (blocking like the real API), records
every ``/response``, ``/error`` and ``/init/error`` post with its headers, and timestamps the
hand-off so the per-invoke cost of a client can be measured from the outside.
"""

from __future__ import annotations

import json
import queue
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PREFIX = "/2018-06-01/runtime"


@dataclass
class Invocation:
    request_id: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Post:
    kind: str  # "response", "error" or "init_error"
    request_id: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    received_at: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _State:
    pending: queue.Queue[Invocation | None] = field(default_factory=queue.Queue)
    posts: list[Post] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    next_sent_at: dict[str, float] = field(default_factory=dict)
    next_requests: list[dict[str, str]] = field(default_factory=list)
    client_ports: set[int] = field(default_factory=set)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    arrived_at = 0.0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        # One write for status line, headers and body: no Nagle/delayed-ACK interplay.
        reason = {200: "OK", 202: "Accepted", 404: "Not Found"}.get(status, "Status")
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def parse_request(self) -> bool:
        # The request line has just been read: the closest we get to "bytes arrived".
        self.arrived_at = time.perf_counter()
        self.server.state.client_ports.add(self.client_address[1])
        return super().parse_request()

    def do_GET(self) -> None:
        state = self.server.state
        if self.path != _PREFIX + "/invocation/next":
            self._reply(404, b"{}")
            return
        state.next_requests.append({k.lower(): v for k, v in self.headers.items()})
        inv = state.pending.get()
        if inv is None:  # shutdown: tell the runtime to go away
            self._reply(500, b'{"errorType":"Shutdown"}', {"Content-Type": "application/json"})
            self.close_connection = True
            return
        headers = {"Content-Type": "application/json", **inv.headers}
        self._reply(200, inv.body, headers)
        state.next_sent_at[inv.request_id] = time.perf_counter()

    def do_POST(self) -> None:
        received = self.arrived_at
        state = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        path = self.path
        if path == _PREFIX + "/init/error":
            kind, rid = "init_error", ""
        elif path.startswith(_PREFIX + "/invocation/"):
            rid, _, kind = path[len(_PREFIX + "/invocation/") :].partition("/")
        else:
            self._reply(404, b"{}")
            return
        post = Post(kind, rid, {k.lower(): v for k, v in self.headers.items()}, body, received)
        with state.cond:
            state.posts.append(post)
            state.cond.notify_all()
        self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime killed at the end of a test resets its connection: not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeRuntimeAPI:
    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def posts(self) -> list[Post]:
        return list(self._server.state.posts)

    @property
    def connections(self) -> int:
        """How many TCP connections the runtime has used so far."""
        return len(self._server.state.client_ports)

    @property
    def next_requests(self) -> list[dict[str, str]]:
        return list(self._server.state.next_requests)

    def push(
        self,
        event: Any = None,
        *,
        raw: bytes | None = None,
        request_id: str | None = None,
        deadline_ms: int | None = None,
        arn: str = "arn:aws:lambda:us-east-1:123456789012:function:fn",
        headers: dict[str, str] | None = None,
    ) -> str:
        rid = request_id or str(uuid.uuid4())
        body = raw if raw is not None else json.dumps({} if event is None else event).encode()
        hdrs = {
            "Lambda-Runtime-Aws-Request-Id": rid,
            "Lambda-Runtime-Deadline-Ms": str(
                deadline_ms if deadline_ms is not None else int(time.time() * 1000) + 30_000
            ),
            "Lambda-Runtime-Invoked-Function-Arn": arn,
            **(headers or {}),
        }
        self._server.state.pending.put(Invocation(rid, body, hdrs))
        return rid

    def wait_post(self, request_id: str, timeout: float = 15.0) -> Post:
        return self._wait(lambda p: p.request_id == request_id and p.kind != "init_error", timeout)

    def wait_init_error(self, timeout: float = 15.0) -> Post:
        return self._wait(lambda p: p.kind == "init_error", timeout)

    def _wait(self, match: Any, timeout: float) -> Post:
        state = self._server.state
        deadline = time.monotonic() + timeout
        with state.cond:
            while True:
                for post in state.posts:
                    if match(post):
                        return post
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching post from the runtime")
                state.cond.wait(left)

    def handoff_us(self, request_id: str) -> float:
        """Microseconds from our /next answer to the arrival of the runtime's result."""
        post = self.wait_post(request_id)
        return (post.received_at - self._server.state.next_sent_at[request_id]) * 1e6

    def close(self) -> None:
        for _ in range(4):
            self._server.state.pending.put(None)
        self._server.shutdown()
        self._server.server_close()
