"""Async (Event) invokes: accept rate and the 202's latency from 8 clients, and the time from an
accepted event to its handler starting (issue 14's targets: >= 2,000/s, p99 <= 5 ms; p50 <= 5 ms).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from bench.common import ROOT, server, signed_headers, summarize

from support import lambda_client, make_zip, wait_active

ROLE = "arn:aws:iam::000000000000:role/bench"
NOOP = make_zip({"app.py": "def handler(event, context):\n    return None\n"})
STAMP = make_zip(
    {
        "app.py": "import time\n"
        "def handler(event, context):\n"
        "    print('S', event['i'], repr(time.time()))\n"
    }
)
CLIENTS = 8


def _deploy(client: Any, name: str, code: bytes) -> None:
    client.create_function(
        FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": code},
    )  # fmt: skip
    wait_active(client, name)


def _post_event(conn: http.client.HTTPConnection, url: str, path: str, body: bytes) -> int:
    headers = signed_headers("POST", url + path, body, {"X-Amz-Invocation-Type": "Event"})
    headers["X-Amz-Invocation-Type"] = "Event"
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def _accept(url: str, port: int, name: str, seconds: float) -> dict[str, Any]:
    path = f"/2015-03-31/functions/{name}/invocations"
    samples: list[list[int]] = [[] for _ in range(CLIENTS)]
    bad: list[int] = []
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        body = json.dumps({"k": k}).encode()
        while time.monotonic() < stop:
            t0 = time.perf_counter_ns()
            status = _post_event(conn, url, path, body)
            samples[k].append(time.perf_counter_ns() - t0)
            if status != 202:
                bad.append(status)
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    flat = [s for per in samples for s in per]
    return {
        "clients": CLIENTS,
        "accepted_per_s": round(len(flat) / elapsed, 1),
        "not_202": len(bad),
        "latency_202": summarize(flat),
    }


def _dispatch(url: str, port: int, name: str, n: int) -> dict[str, Any]:
    path = f"/2015-03-31/functions/{name}/invocations"
    conn = http.client.HTTPConnection("127.0.0.1", port)
    accepted: dict[int, float] = {}
    for i in range(n + 5):
        status = _post_event(conn, url, path, json.dumps({"i": i}).encode())
        accepted[i] = time.time()
        assert status == 202, status
        time.sleep(0.05)  # the environment is free again before the next one
    conn.close()
    time.sleep(1.0)
    logs = httpx.get(f"{url}/_brazier/v1/functions/{quote(name)}/logs?limit=10000", timeout=30)
    started: dict[int, float] = {}
    for e in logs.json()["events"]:
        parts = e["message"].split()
        if len(parts) == 3 and parts[0] == "S":
            started[int(parts[1])] = float(parts[2])
    delays = [int((started[i] - accepted[i]) * 1e9) for i in range(5, n + 5) if i in started]
    return {"accepted_to_handler_start": summarize(delays), "missing": n - len(delays)}


def _queue_alone(path: Path, seconds: float) -> dict[str, Any]:
    """The SQLite queue by itself, in process: 8 producers enqueueing back to back (group
    commit, fsync'd), no HTTP, no dispatcher."""
    from brazier.events.queue import Kind, QueuedEvent
    from brazier.events.sqlite_queue import SqliteQueue

    async def main() -> dict[str, Any]:
        q = SqliteQueue(path)
        samples: list[int] = []
        async with q.running():
            stop = time.monotonic() + seconds
            n = iter(range(10**9))

            async def producer() -> None:
                while time.monotonic() < stop:
                    i = next(n)
                    e = QueuedEvent(
                        id=f"e{i}", kind=Kind.INVOKE, account="0" * 12, region="us-east-1",
                        function="f", qualifier=None, payload=b"{}", request_id=f"r{i}",
                        enqueued_at=time.time(),
                    )  # fmt: skip
                    t0 = time.perf_counter_ns()
                    await q.enqueue(e)
                    samples.append(time.perf_counter_ns() - t0)

            t0 = time.monotonic()
            await asyncio.gather(*(producer() for _ in range(CLIENTS)))
            elapsed = time.monotonic() - t0
            return {
                "producers": CLIENTS,
                "enqueued_per_s": round(len(samples) / elapsed, 1),
                "commits": q.batches,
                "latency": summarize(samples),
            }

    return asyncio.run(main())


def run(tmp: Path, *, quick: bool = False) -> dict[str, Any]:
    queue_alone = _queue_alone(tmp / "alone.db", 3.0 if quick else 10.0)
    with server(tmp) as srv:
        client = lambda_client(srv.url)
        _deploy(client, "ev-noop", NOOP)
        _deploy(client, "ev-stamp", STAMP)
        _deploy(client, "ev-discard", NOOP)
        # Reserved concurrency 0: every event is stored, leased and settled, but no sandbox
        # runs, so this measures the queue and the dispatcher rather than the handlers.
        client.put_function_concurrency(FunctionName="ev-discard", ReservedConcurrentExecutions=0)
        seconds = 3.0 if quick else 10.0
        out: dict[str, Any] = _dispatch(srv.url, srv.port, "ev-stamp", 50 if quick else 200)
        out["accept_queue_only"] = _accept(srv.url, srv.port, "ev-discard", seconds)
        out["accept_running_noop"] = _accept(srv.url, srv.port, "ev-noop", seconds)
        out["queue_alone"] = queue_alone
        out["events_db_bytes"] = (srv.data_dir / "events.db").stat().st_size
        return out


if __name__ == "__main__":
    import sys
    import tempfile

    sys.path.insert(0, str(ROOT / "tests"))
    with tempfile.TemporaryDirectory(prefix="bench-events-") as d:
        print(json.dumps(run(Path(d), quick="--quick" in sys.argv), indent=2))
