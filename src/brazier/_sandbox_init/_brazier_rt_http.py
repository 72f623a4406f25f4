"""A minimal HTTP/1.1 client for the Runtime API on one keep-alive connection.

Part of the in-sandbox Python runtime client (see ``python_runtime``); stdlib only, Python 3.9+.
"""

from __future__ import annotations

import mmap
import socket

_READ_SIZE = 262144


class _ConnectionLost(Exception):
    def __init__(self, msg: str, *, started: bool) -> None:
        super().__init__(msg)
        self.started = started  # whether any byte of the response had arrived


class _RuntimeConnection:
    """A minimal HTTP/1.1 keep-alive client for the Runtime API on one TCP connection.

    Why not ``http.client``: on the hot path it costs ~75 µs of CPU per request here (a
    ``makefile()`` per response, header parsing through ``email.feedparser``, two ``send()`` calls
    per POST), which is most of a no-op invoke. This client sends each request in one ``send()``
    and parses the few headers the Runtime API returns with ``bytes.find``/``str.split``. It
    supports Content-Length, chunked and read-until-close bodies. No timeout: /next blocks while
    the environment is idle or frozen.
    """

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._addr = (host.strip("[]"), int(port))
        self._host = address
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._scratch: memoryview | None = None
        self._pending_get: str | None = None  # a GET sent behind the last request, unanswered

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf.clear()
        self._pending_get = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: str = "",
        *,
        then_get: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request; ``headers`` is preformatted ``Name: value\r\n`` text.

        With ``then_get``, a ``GET then_get`` follows in the same write (HTTP/1.1 pipelining,
        which the Runtime API serves in order): its answer is left for ``get``. A runtime posts
        a result and asks for the next event with one system call, and the platform reads both
        at once.
        """
        if method == "GET":
            head = f"GET {path} HTTP/1.1\r\nHost: {self._host}\r\n\r\n"
        else:
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\n{headers}"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
        data = head.encode("latin-1")
        follow = b""
        if then_get is not None:
            follow = f"GET {then_get} HTTP/1.1\r\nHost: {self._host}\r\n\r\n".encode("latin-1")
        self._pending_get = None
        for attempt in (1, 2):
            fresh = self._sock is None
            sock = self._connect() if self._sock is None else self._sock
            try:
                if len(body) <= 65536:
                    sock.sendall(data + body + follow)  # one segment: no Nagle/delayed-ACK stall
                else:
                    sock.sendall(data)
                    sock.sendall(body)
                    sock.sendall(follow)
                answer = self._read_response(sock)
            except (_ConnectionLost, ConnectionError) as e:
                self.close()
                # A reused keep-alive connection may have been closed by the server just before
                # we wrote: retry once on a fresh one, unless part of an answer had arrived.
                if fresh or attempt == 2 or (isinstance(e, _ConnectionLost) and e.started):
                    raise
            else:
                if then_get is not None and self._sock is not None:
                    self._pending_get = then_get
                return answer
        raise AssertionError("unreachable")

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """``GET path``; only its answer is read when the request was pipelined already."""
        if self._pending_get == path and self._sock is not None:
            self._pending_get = None
            try:
                return self._read_response(self._sock)
            except (_ConnectionLost, ConnectionError) as e:
                self.close()
                if isinstance(e, _ConnectionLost) and e.started:
                    raise
                # Closed before answering (the server may drop an idle keep-alive connection):
                # ask again on a fresh connection.
        return self.request("GET", path)

    def _connect(self) -> socket.socket:
        host, port = self._addr
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            socket.inet_pton(family, host)
        except OSError:  # a name: resolve it
            sock = socket.create_connection(self._addr)
        else:
            # A numeric address (always, under brazier): connect directly. create_connection's
            # getaddrinfo() would initialise glibc's resolver, which dirties ~650 KiB of memory
            # that is otherwise shared with the zygote, in every environment.
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.connect((host, port))
            except BaseException:
                sock.close()
                raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buf.clear()
        return sock

    def _fill(self, sock: socket.socket, started: bool) -> None:
        # Into one buffer kept for the client's life: a fresh 256 KiB ``recv`` buffer per call
        # is an mmap, page faults and an munmap per read (large allocations bypass the heap).
        # An anonymous mapping, not a bytearray (which zero-fills): only the pages a read has
        # reached are ever resident, one for a small event.
        scratch = self._scratch
        if scratch is None:
            scratch = self._scratch = memoryview(mmap.mmap(-1, _READ_SIZE))
        n = sock.recv_into(scratch)
        if not n:
            raise _ConnectionLost("the Runtime API closed the connection", started=started)
        self._buf += scratch[:n]

    def _read_response(self, sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
        buf = self._buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            self._fill(sock, bool(buf))
        raw = bytes(buf[:end])
        del buf[: end + 4]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        lines = text.split("\r\n")
        status = int(lines[0][9:12])  # "HTTP/1.1 200 OK"
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked(sock)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            while len(buf) < length:
                self._fill(sock, True)
            body = bytes(buf[:length])
            del buf[:length]
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # no framing: the body runs to the end of the connection
            try:
                while True:
                    self._fill(sock, True)
            except _ConnectionLost:
                pass
            body = bytes(buf)
            self.close()
            return status, headers, body
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def _read_chunked(self, sock: socket.socket) -> bytes:
        buf = self._buf
        out = bytearray()
        while True:
            while (eol := buf.find(b"\r\n")) < 0:
                self._fill(sock, True)
            size = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
            del buf[: eol + 2]
            if size == 0:  # skip trailers up to the blank line
                while True:
                    while (eol := buf.find(b"\r\n")) < 0:
                        self._fill(sock, True)
                    line_empty = eol == 0
                    del buf[: eol + 2]
                    if line_empty:
                        return bytes(out)
            while len(buf) < size + 2:
                self._fill(sock, True)
            out += buf[:size]
            del buf[: size + 2]


# ----------------------------------------------------------------------------------------------
# The runtime loop
# ----------------------------------------------------------------------------------------------
