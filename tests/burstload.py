"""A burst of concurrent invokes over raw loopback sockets, with ``/health`` timed meanwhile.

Shared by ``tests/invoke/test_burst.py`` and ``make bench`` (suite ``burst``). Raw asyncio
streams, not an HTTP client library: 2,000 requests in flight from one client process must cost
the client little CPU, or the client, not the server, is what gets measured.
"""

from __future__ import annotations

import asyncio
import collections
import http.client
import json
import re
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import botocore.auth
import botocore.credentials
from botocore.awsrequest import AWSRequest

# What a zygote's replacement logs (sandbox/factory.py): a burst must never cause one.
ZYGOTE_REPLACED = re.compile(r"the zygote of \S+ died; starting a new one")


def signed_headers(method: str, url: str, body: bytes) -> dict[str, str]:
    """SigV4 headers as boto3 sends them (signed once, reused by every request of the burst)."""
    req = AWSRequest(method=method, url=url, data=body, headers={})
    creds = botocore.credentials.Credentials("AKIAIOSFODNN7EXAMPLE", "burst-secret")
    botocore.auth.SigV4Auth(creds, "lambda", "us-east-1").add_auth(req)
    return dict(req.headers.items())


@dataclass
class BurstReport:
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    # 429 reasons as the body's Reason field; other answers' first bodies, for diagnosis.
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    unexpected: list[str] = field(default_factory=list)
    connection_errors: int = 0
    health_ms: list[float] = field(default_factory=list)
    health_at: list[float] = field(default_factory=list)  # when each was sent (monotonic)
    health_failures: int = 0
    seconds: float = 0.0

    @property
    def bad(self) -> int:
        """Answers that are neither 200 nor 429 (5xx, other errors, dropped connections)."""
        good = self.statuses[200] + self.statuses[429]
        return sum(self.statuses.values()) - good + self.connection_errors

    def health_summary(self) -> dict[str, float]:
        ms = sorted(self.health_ms)
        if not ms:
            return {"n": 0}
        n = len(ms)
        return {
            "n": n,
            "p50_ms": round(ms[n // 2], 2),
            "p99_ms": round(ms[min(n - 1, int(n * 0.99))], 2),
            "max_ms": round(ms[-1], 2),
            "failures": self.health_failures,
        }

    def summary(self) -> dict[str, object]:
        return {
            "requests": sum(self.statuses.values()) + self.connection_errors,
            "status_200": self.statuses[200],
            "status_429": self.statuses[429],
            "status_5xx": sum(v for k, v in self.statuses.items() if k >= 500),
            "other_status": sum(v for k, v in self.statuses.items() if k not in (200, 429))
            - sum(v for k, v in self.statuses.items() if k >= 500),
            "connection_errors": self.connection_errors,
            "reasons_429": dict(self.reasons),
            "seconds": round(self.seconds, 2),
            "health": self.health_summary(),
            "first_unexpected": self.unexpected[:3],
        }


async def _one(host: str, port: int, raw: bytes, report: BurstReport, within: float) -> None:
    try:
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(raw)
                data = await reader.read()  # Connection: close: the answer ends at EOF
            finally:
                writer.close()
    except (OSError, TimeoutError) as exc:
        report.connection_errors += 1
        report.unexpected.append(f"connection: {exc!r}")
        return
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        report.connection_errors += 1
        report.unexpected.append(f"unparsable answer: {data[:200]!r}")
        return
    report.statuses[status] += 1
    if status == 429:
        try:
            report.reasons[str(json.loads(body).get("Reason"))] += 1
        except ValueError:
            report.reasons["(no JSON body)"] += 1
    elif status != 200:
        report.unexpected.append(f"{status}: {body[:300]!r}")


def _poll_health(host: str, port: int, stop: threading.Event, report: BurstReport) -> None:
    """GET /health every 10 ms on a keep-alive connection of its own thread."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            conn.request("GET", "/health")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                report.health_failures += 1
        except (OSError, http.client.HTTPException):
            report.health_failures += 1
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
            continue
        report.health_ms.append((time.perf_counter() - t0) * 1000)
        report.health_at.append(t0)
        stop.wait(0.01)
    conn.close()


def burst(
    url: str, function: str, n: int, payload: object, *, timeout: float = 120.0
) -> BurstReport:
    """``n`` concurrent RequestResponse invokes of ``function``, all sent at once."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = f"/2015-03-31/functions/{function}/invocations"
    body = json.dumps(payload).encode()
    headers = signed_headers("POST", url + path, body)
    lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    _allow_open_files(n + 256)
    report = BurstReport()
    stop = threading.Event()
    poller = threading.Thread(target=_poll_health, args=(host, port, stop, report))
    poller.start()

    async def fire() -> None:
        async with asyncio.TaskGroup() as tg:
            for _ in range(n):
                tg.create_task(_one(host, port, raw, report, timeout))

    t0 = time.monotonic()
    try:
        asyncio.run(fire())
    finally:
        report.seconds = time.monotonic() - t0
        stop.set()
        poller.join()
    return report


def _allow_open_files(wanted: int) -> None:
    """Raise this process's soft open files limit for one socket per request (up to the hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))


def zygotes_replaced(server_log: Path) -> int:
    """How many times the server replaced a zygote it took for dead."""
    try:
        return len(ZYGOTE_REPLACED.findall(server_log.read_text(errors="replace")))
    except OSError:
        return 0
