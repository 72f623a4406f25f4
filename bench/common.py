"""Shared pieces: a server under test, keep-alive HTTP timing, percentiles, machine facts."""

from __future__ import annotations

import http.client
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import botocore.auth
import botocore.credentials
from botocore.awsrequest import AWSRequest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import ServerProcess  # noqa: E402


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def speed() -> dict[str, float]:
    """How fast this machine is right now: a shared VM's speed drifts by tens of percent within
    an hour, so each report carries this, taken before and after, to compare runs by. The best
    of five: a ``getppid()`` (a system call's round trip) and a loop of Python bytecode."""

    def best(fn: Callable[[], None], n: int) -> float:
        times = []
        for _ in range(5):
            t0 = time.perf_counter_ns()
            fn()
            times.append((time.perf_counter_ns() - t0) / n)
        return min(times)

    def syscalls() -> None:
        for _ in range(20_000):
            os.getppid()

    def bytecode() -> None:
        total = 0
        for i in range(200_000):
            total += i & 7

    return {
        "getppid_ns": round(best(syscalls, 20_000), 1),
        "python_loop_ns": round(best(bytecode, 200_000), 2),
    }


def summarize(samples_ns: list[int]) -> dict[str, float]:
    ms = sorted(s / 1e6 for s in samples_ns)
    n = len(ms)
    return {
        "n": n,
        "p50_ms": round(statistics.median(ms), 4),
        "p90_ms": round(ms[min(n - 1, int(n * 0.90))], 4),
        "p99_ms": round(ms[min(n - 1, int(n * 0.99))], 4),
        "mean_ms": round(statistics.fmean(ms), 4),
        "max_ms": round(ms[-1], 4),
    }


def signed_headers(
    method: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> dict[str, str]:
    """SigV4 headers as boto3 would send them (signed once, reused: valid for 5 minutes)."""
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    creds = botocore.credentials.Credentials("AKIABENCHMARK", "benchmark-secret")
    botocore.auth.SigV4Auth(creds, "lambda", "us-east-1").add_auth(req)
    return dict(req.headers.items())


def time_requests(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: Mapping[str, str],
    n: int,
    warmup: int = 200,
    check: Callable[[int, bytes], None] | None = None,
) -> list[int]:
    """Round-trip times of ``n`` identical requests over one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    samples: list[int] = []
    for i in range(warmup + n):
        t0 = time.perf_counter_ns()
        conn.request(method, path, body=body, headers=dict(headers))
        resp = conn.getresponse()
        data = resp.read()
        t1 = time.perf_counter_ns()
        if check is not None:
            check(resp.status, data)
        if i >= warmup:
            samples.append(t1 - t0)
    conn.close()
    return samples


@contextmanager
def server(tmp: Path, *args: str) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp / "data", args=args, prewarm="all").start()
    time.sleep(2.0)  # let the zygotes of every runtime finish starting, as on a running server
    try:
        yield srv
    finally:
        srv.stop()


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
            check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
