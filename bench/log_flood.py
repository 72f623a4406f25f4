"""Log floods: the server's peak RSS growth while one invocation prints 200 MB (and 600 MB) of
1 KiB lines, and 200 MB of empty lines, and what is stored of it (issue 11 item 7; target: RSS
+50 MB at most, whatever the output)."""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, server

sys.path.insert(0, str(ROOT / "tests"))

from support import lambda_client, make_zip, wait_active

ROLE = "arn:aws:iam::000000000000:role/bench"
FLOOD_PY = make_zip(
    {
        "app.py": (
            "import sys\n"
            "def handler(event, context):\n"
            "    line = event.get('line', 'x' * 1023 + '\\n')\n"
            "    row = line * (1048576 // len(line))\n"
            "    for _ in range(event['mib']):\n"
            "        sys.stdout.write(row)\n"
            "    sys.stdout.flush()\n"
            "    return event['mib']\n"
        )
    }
)


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _stored(url: str, name: str) -> tuple[int, int, int]:
    """(events, bytes of the function's own lines, records reported dropped) of ``name``."""
    events = size = dropped = 0
    after = 0
    while True:
        reply = httpx.get(
            f"{url}/_brazier/v1/functions/{name}/logs?after={after}&limit=10000", timeout=120
        )
        reply.raise_for_status()
        page = reply.json()["events"]
        if not page:
            return events, size, dropped
        for e in page:
            msg = e["message"]
            events += 1
            if msg.startswith("x") or msg == "\n":
                size += len(msg)
            elif msg.startswith("LOGS_DROPPED "):
                dropped += int(msg.split("DroppedRecords: ")[1].split("\t")[0])
        after = page[-1]["seq"]


def flood(srv: Any, client: Any, mib: int, line: str | None = None) -> dict[str, Any]:
    name = f"flood-{mib}-{'empty' if line == chr(10) else 'kib'}"
    client.create_function(
        FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": FLOOD_PY}, Timeout=300, MemorySize=256,
    )  # fmt: skip
    wait_active(client, name)
    client.invoke(FunctionName=name, Payload=b'{"mib": 0}')  # the cold start, not measured
    time.sleep(1.0)
    pid = srv.proc.pid
    db = srv.data_dir / "logs.db"
    db_before = db.stat().st_size + Path(f"{db}-wal").stat().st_size
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
    rss_before = _status_kib(pid, "VmRSS")
    t0 = time.perf_counter()
    event = {"mib": mib} if line is None else {"mib": mib, "line": line}
    out = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    seconds = time.perf_counter() - t0
    if out["StatusCode"] != 200 or "FunctionError" in out:
        raise RuntimeError(f"the flood failed: {out}")
    time.sleep(0.5)  # the last batch reaches the writer
    peak = _status_kib(pid, "VmHWM")
    events, size, dropped = _stored(srv.url, name)
    db_after = db.stat().st_size + Path(f"{db}-wal").stat().st_size
    return {
        "printed_mib": mib,
        "invoke_seconds": round(seconds, 3),
        "server_rss_before_mib": round(rss_before / 1024, 1),
        "server_peak_rss_growth_mib": round((peak - rss_before) / 1024, 1),
        "stored_events": events,
        "stored_function_mib": round(size / 2**20, 2),
        "dropped_records_reported": dropped,
        "logs_db_growth_mib": round((db_after - db_before) / 2**20, 1),
    }


def concurrent_floods(srv: Any, n: int, mib: int) -> dict[str, Any]:
    """``n`` functions printing ``mib`` MB each at once: the server's peak RSS growth."""
    client = lambda_client(srv.url)
    names = [f"together-{i}" for i in range(n)]
    for name in names:
        client.create_function(
            FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
            Code={"ZipFile": FLOOD_PY}, Timeout=300, MemorySize=256,
        )  # fmt: skip
        wait_active(client, name)
        client.invoke(FunctionName=name, Payload=b'{"mib": 0}')
    time.sleep(1.0)
    pid = srv.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    rss_before = _status_kib(pid, "VmRSS")
    payload = json.dumps({"mib": mib}).encode()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        outs = list(pool.map(lambda nm: lambda_client(srv.url).invoke(
            FunctionName=nm, Payload=payload), names))  # fmt: skip
    seconds = time.perf_counter() - t0
    if any(o["StatusCode"] != 200 or "FunctionError" in o for o in outs):
        raise RuntimeError("a flood failed")
    time.sleep(0.5)
    return {
        "functions": n,
        "printed_mib_each": mib,
        "seconds": round(seconds, 3),
        "server_rss_before_mib": round(rss_before / 1024, 1),
        "server_peak_rss_growth_mib": round((_status_kib(pid, "VmHWM") - rss_before) / 1024, 1),
    }


def run(tmp: Path, *, quick: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {}
    cases = [("flood_200mb", 200, None), ("flood_200mb_empty_lines", 200, "\n")]
    if not quick:
        cases.insert(1, ("flood_600mb", 600, None))
    for key, mib, line in cases:  # each in a fresh server: growth from its own baseline
        with server(tmp / key) as srv:
            results[key] = flood(srv, lambda_client(srv.url), mib, line)
    with server(tmp / "together") as srv:
        results["flood_8_functions_200mb"] = concurrent_floods(srv, 8, 200)
    return results
