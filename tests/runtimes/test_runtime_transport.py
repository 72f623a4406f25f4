"""The runtime client's transport: the resolver is skipped for numeric addresses, and a result's
POST carries the next GET in the same write (on every python3.X interpreter the machine has)."""

from __future__ import annotations

import pytest

from .conftest import PYTHONS, run_snippet

CONNECT = """
import socket, threading
from _brazier_rt_http import _RuntimeConnection

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(4)
port = server.getsockname()[1]
accepted = []
accept = lambda: [accepted.append(server.accept()) for _ in range(2)]
threading.Thread(target=accept, daemon=True).start()

real = socket.getaddrinfo
resolved = []
socket.getaddrinfo = lambda *a, **k: resolved.append(a[0]) or real(*a, **k)
_RuntimeConnection(f"127.0.0.1:{port}")._connect().close()
assert resolved == [], resolved  # a numeric address: no resolver
_RuntimeConnection(f"localhost:{port}")._connect().close()
assert resolved == ["localhost"], resolved  # a name still resolves
print("ok")
"""


@pytest.mark.parametrize("python", PYTHONS)
def test_numeric_runtime_api_address_skips_the_resolver(python: str) -> None:
    assert run_snippet(python, CONNECT).strip() == "ok"


PIPELINE = """
import socket, threading
from _brazier_rt_http import _RuntimeConnection

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(4)
port = server.getsockname()[1]
ACCEPTED = b"HTTP/1.1 202 Accepted\\r\\nContent-Length: 2\\r\\n\\r\\n{}"
EVENT = b"HTTP/1.1 200 OK\\r\\nContent-Length: 7\\r\\n\\r\\n{\\"n\\":1}"
CLOSING = b"HTTP/1.1 202 Accepted\\r\\nConnection: close\\r\\nContent-Length: 2\\r\\n\\r\\n{}"
seen = []

def serve():
    c, _ = server.accept()
    first = c.recv(65536)  # the POST and the GET arrive in one write
    seen.append(first)
    c.sendall(ACCEPTED)
    c.sendall(EVENT)
    seen.append(c.recv(65536))  # the second POST + GET
    c.sendall(CLOSING)  # answers the POST, then closes: the pipelined GET is lost
    c.close()
    c, _ = server.accept()
    seen.append(c.recv(65536))  # asked again on a fresh connection
    c.sendall(EVENT)
    c.close()

t = threading.Thread(target=serve, daemon=True)
t.start()
conn = _RuntimeConnection(f"127.0.0.1:{port}")
status, _, _ = conn.request("POST", "/r", b"x", "", then_get="/next")
assert status == 202
assert seen[0].count(b"HTTP/1.1\\r\\n") == 2 and seen[0].endswith(b"GET /next HTTP/1.1\\r\\nHost: 127.0.0.1:%d\\r\\n\\r\\n" % port), seen
status, _, body = conn.get("/next")  # already asked: only read
assert (status, body) == (200, b'{"n":1}')
status, _, _ = conn.request("POST", "/r", b"y", "", then_get="/next")
assert status == 202
status, _, body = conn.get("/next")
assert (status, body) == (200, b'{"n":1}')
assert seen[2].startswith(b"GET /next HTTP/1.1"), seen
print("ok")
"""


@pytest.mark.parametrize("python", PYTHONS)
def test_result_post_and_next_request_share_one_write(python: str) -> None:
    assert run_snippet(python, PIPELINE).strip() == "ok"
