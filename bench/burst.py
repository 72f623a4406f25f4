"""A burst of cold starts: 2,000 concurrent invokes of a 1 s function on an idle server.

Counts the answers by status (every one must be a 200 or a Lambda-shaped 429, never a 5xx), times
``/health`` throughout (p50/p99/max), and counts zygotes the server replaced (none should be).
Two servers: the default account concurrency (1,000: half the burst is throttled), and one
high enough (2,500) that every request needs an environment.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.common import ROOT, server

sys.path.insert(0, str(ROOT / "tests"))

from burstload import burst, zygotes_replaced

from support import lambda_client, make_zip, wait_active

SLEEP_1S = make_zip(
    {"app.py": "import time\ndef handler(e, c):\n    time.sleep(1)\n    return 1\n"}
)


def _run(tmp: Path, n: int, concurrency: int) -> dict[str, Any]:
    with server(tmp, "--account-concurrency", str(concurrency)) as srv:
        client = lambda_client(srv.url)
        client.create_function(
            FunctionName="burst", Runtime="python3.11", Role="arn:aws:iam::000000000000:role/b",
            Handler="app.handler", Code={"ZipFile": SLEEP_1S}, MemorySize=128, Timeout=60,
        )  # fmt: skip
        wait_active(client, "burst")
        report = burst(srv.url, "burst", n, {})
        out: dict[str, Any] = {"account_concurrency": concurrency, **report.summary()}
        out["zygotes_replaced"] = zygotes_replaced(srv.log)
    return out


def run(tmp: Path, *, quick: bool = False) -> dict[str, Any]:
    n = 500 if quick else 2000
    return {
        "burst_half_throttled": _run(tmp / "half", n, n // 2),
        "burst_unthrottled": _run(tmp / "all", n, n + n // 4),
    }
