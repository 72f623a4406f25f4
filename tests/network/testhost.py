"""A test "internet" host, run inside a network namespace the tests create (never an outside
address): HTTP on 80 (``/`` says hello, ``/bytes/N`` sends N bytes), a TCP echo on 7 and 81, and
a DNS responder on 53 answering ``A`` queries for ``*.brazier.test`` with this host's address.
Stdlib only; prints "ready" once listening."""

from __future__ import annotations

import http.server
import socket
import socketserver
import struct
import sys
import threading

ADDRESS = sys.argv[1]
CHUNK = b"x" * (1 << 20)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/bytes/"):
            n = int(self.path.rsplit("/", 1)[1])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            while n > 0:
                part = CHUNK[: min(n, len(CHUNK))]
                self.wfile.write(part)
                n -= len(part)
            return
        body = b"hello from the test internet"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


def dns(s: socket.socket) -> None:
    while True:
        q, peer = s.recvfrom(512)
        qid, _flags, _qd = struct.unpack("!HHH", q[:6])
        off, labels = 12, []
        while q[off]:
            labels.append(q[off + 1 : off + 1 + q[off]].decode())
            off += 1 + q[off]
        question = q[12 : off + 5]
        qtype = struct.unpack("!H", q[off + 1 : off + 3])[0]
        name = ".".join(labels).lower()
        ok = name.endswith(".brazier.test") and qtype == 1
        header = struct.pack("!HHHHHH", qid, 0x8180 if ok else 0x8183, 1, 1 if ok else 0, 0, 0)
        answer = b""
        if ok:
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ADDRESS)
        s.sendto(header + question + answer, peer)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


http_server = http.server.ThreadingHTTPServer(("0.0.0.0", 80), Handler)
http_server.daemon_threads = True
servers = [http_server, Server(("0.0.0.0", 7), Echo), Server(("0.0.0.0", 81), Echo)]
for srv in servers:
    threading.Thread(target=srv.serve_forever, daemon=True).start()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 53))
threading.Thread(target=dns, args=(udp,), daemon=True).start()
print("ready", flush=True)
sys.stdin.read()  # until the test closes our stdin
