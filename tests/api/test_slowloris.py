"""Slow and idle clients lose their connection (issue 11, item 5), against a real server started
with a short ``--read-timeout`` (1 s): each test waits at most a few seconds."""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from support import ServerProcess

READ_TIMEOUT = 1.0
WAIT = 8.0  # how long a client waits for the server to give up on it (≫ READ_TIMEOUT)


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("slowloris") / "data"
    # 4,096 descriptors: a quarter, less 256, would allow 768 connections; the floor of the
    # account concurrency + 1,024 makes it 1,032.
    srv = ServerProcess(
        data,
        args=("--read-timeout", str(READ_TIMEOUT), "--account-concurrency", "8"),
        open_files=(4096, 4096),
    ).start()
    yield srv
    srv.stop()


def _connect(srv: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (raises TimeoutError past WAIT s)."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_a_silent_connection_is_closed(strict: ServerProcess) -> None:
    with _connect(strict) as sock:
        answer = _until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")


def _trickle(sock: socket.socket, piece: bytes) -> bytes | None:
    """Send ``piece`` every 0.2 s until the server answers or closes (None: it did not)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            sock.sendall(piece)
            return sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return b""
    return None


def test_a_head_sent_a_byte_at_a_time_is_cut_off(strict: ServerProcess) -> None:
    """Trickling keeps bytes flowing, but the head has a deadline as a whole."""
    with _connect(strict) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        answer = _trickle(sock, b"X: y\r\n")
    assert answer is not None
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")


def test_a_body_that_stops_is_cut_off(strict: ServerProcess) -> None:
    """The issue's reproduction: Content-Length 1000, 5 bytes sent, then nothing."""
    with _connect(strict) as sock:
        sock.sendall(
            b"POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 1000\r\n\r\nhello"
        )
        answer = _until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    # The server is fine, and logged no error for it.
    assert httpx.get(strict.url + "/health").status_code == 200
    assert "Traceback" not in strict.log.read_text()


def test_a_body_trickled_below_the_minimum_rate_is_cut_off(strict: ServerProcess) -> None:
    """Never idle for a whole timeout, but far below the minimum rate (64 KiB/s)."""
    with _connect(strict) as sock:
        sock.sendall(
            b"POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        answer = _trickle(sock, b"x" * 100)
    assert answer is not None
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")


def test_connections_past_the_cap_are_closed_at_once(strict: ServerProcess) -> None:
    """--account-concurrency 8: at most 8 + 1024 connections are held; the rest are dropped
    as they arrive, and the server answers again once the idle ones time out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1200
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    socks: list[socket.socket] = []
    try:
        for _ in range(1100):
            socks.append(socket.create_connection(("127.0.0.1", strict.port), timeout=WAIT))
        time.sleep(0.5)  # the server accepts them all
        dropped = 0
        for s in socks:
            s.settimeout(0.0)
            try:
                if s.recv(1) == b"":
                    dropped += 1
            except BlockingIOError:
                pass
            except ConnectionResetError:
                dropped += 1
        assert dropped >= 1100 - 1032
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert httpx.get(strict.url + "/health", timeout=WAIT).status_code == 200
