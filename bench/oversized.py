"""Oversized requests: the server's peak RSS while 100 clients each send a 100 MB body at once.

Issue 11, item 4's target: no request makes the server's RSS grow by more than 2x the largest
body cap (70 MB), and 100 concurrent oversized requests leave it under 300 MB. Each scenario
starts a fresh server (``--auth none``, the worst case: nobody is refused for lack of a
signature) and samples the server process's RSS every 10 ms while the clients send as fast as
they can and stop once the server answers. Reported: RSS before, the peak, and VmHWM.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import ServerProcess

CLIENTS = 100
BODY = 100 * 1024 * 1024
PIECE = 1024 * 1024

SCENARIOS = {
    # Announced with Content-Length: refused before any of it is read.
    "create_function_content_length": ("POST", "/2015-03-31/functions", False, ()),
    # Chunked: read (spooled to disk past 1 MiB) until the 70 MB cap, then refused.
    "create_function_chunked": ("POST", "/2015-03-31/functions", True, ()),
    # The reproduction: a 300 MB unsigned body to the logs route was read whole.
    "logs_route_content_length": ("GET", "/_brazier/v1/functions/x/logs", False, ()),
    "invoke_chunked": ("POST", "/2015-03-31/functions/f/invocations", True, ()),
    # A sigv4 server: an unsigned request is refused before its body.
    "sigv4_unsigned_chunked": ("POST", "/2015-03-31/functions", True, ("--auth", "sigv4")),
}


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _client(port: int, method: str, path: str, chunked: bool, out: list[str]) -> None:
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY}"
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{framing}\r\n\r\n".encode()
    piece = b"x" * PIECE
    if chunked:
        piece = b"%x\r\n" % PIECE + piece + b"\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall(head)
            sent = 0
            while sent < BODY:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break  # the server answered (or closed): stop sending
                sock.sendall(piece)
                sent += PIECE
            answer = sock.recv(200)
            out.append(answer.split(b"\r\n", 1)[0].decode("latin-1") or "closed")
    except OSError as exc:
        out.append(type(exc).__name__)


def _scenario(tmp: Path, method: str, path: str, chunked: bool, args: tuple[str, ...]) -> Any:
    srv = ServerProcess(tmp / "data", args=args).start()
    assert srv.proc is not None
    pid = srv.proc.pid
    try:
        time.sleep(0.5)
        before = _rss_kib(pid)
        peak = before
        answers: list[str] = []
        threads = [
            threading.Thread(target=_client, args=(srv.port, method, path, chunked, answers))
            for _ in range(CLIENTS)
        ]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, _rss_kib(pid))
            time.sleep(0.01)
        seconds = time.monotonic() - t0
        peak = max(peak, _rss_kib(pid))
        hwm = _rss_kib(pid, "VmHWM")
    finally:
        srv.stop()
    counts: dict[str, int] = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    return {
        "clients": CLIENTS,
        "body_mib": BODY // 2**20,
        "rss_before_mib": round(before / 1024, 1),
        "rss_peak_mib": round(peak / 1024, 1),
        "rss_growth_mib": round((peak - before) / 1024, 1),
        "vm_hwm_mib": round(hwm / 1024, 1),
        "seconds": round(seconds, 2),
        "answers": counts,
    }


def _code_uploads(tmp: Path, n: int) -> dict[str, Any]:
    """``n`` concurrent CreateFunction calls, each with a 49 MB zip (a 68 MB request): legal
    requests, decoded from their spooled bodies two at a time."""
    import io
    import os
    import zipfile

    from support import lambda_client

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return 1\n")
        zf.writestr("blob.bin", os.urandom(49 * 1024 * 1024))
    code = buf.getvalue()
    srv = ServerProcess(tmp / "data").start()
    assert srv.proc is not None
    pid = srv.proc.pid
    errors: list[str] = []

    def create(i: int) -> None:
        try:
            lambda_client(srv.url).create_function(
                FunctionName=f"big-{i}", Runtime="python3.11", Handler="app.handler",
                Role="arn:aws:iam::000000000000:role/r", Code={"ZipFile": code},
            )  # fmt: skip
        except Exception as exc:  # reported in the results
            errors.append(repr(exc)[:200])

    try:
        time.sleep(0.5)
        before = peak = _rss_kib(pid)
        threads = [threading.Thread(target=create, args=(i,)) for i in range(n)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, _rss_kib(pid))
            time.sleep(0.01)
        seconds = time.monotonic() - t0
    finally:
        srv.stop()
    return {
        "clients": n,
        "zip_mib": round(len(code) / 2**20, 1),
        "rss_before_mib": round(before / 1024, 1),
        "rss_peak_mib": round(peak / 1024, 1),
        "rss_growth_mib": round((peak - before) / 1024, 1),
        "seconds": round(seconds, 2),
        "answers": {"ok": n - len(errors), "errors": errors},
    }


def run(tmp: Path, *, quick: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for i, (name, (method, path, chunked, args)) in enumerate(SCENARIOS.items()):
        if quick and name not in ("create_function_content_length", "create_function_chunked"):
            continue
        results[name] = _scenario(tmp / str(i), method, path, chunked, args)
    results["code_uploads_1"] = _code_uploads(tmp / "one", 1)
    if not quick:
        results["code_uploads_10"] = _code_uploads(tmp / "ten", 10)
    return results
