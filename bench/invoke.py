"""Data-plane figures: cold starts, warm invokes, throughput, idle memory, burst scaling."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, server, signed_headers, summarize

sys.path.insert(0, str(ROOT / "tests"))

from support import lambda_client, make_zip, wait_active

ROLE = "arn:aws:iam::000000000000:role/bench"
NOOP_PY = make_zip({"app.py": "def handler(event, context):\n    return None\n"})
NOOP_NODE = make_zip({"index.mjs": "export const handler = async () => null;\n"})
SLEEP_PY = make_zip(
    {
        "app.py": "import time\ndef handler(e, c):\n    t = time.time()\n    time.sleep(e['s'])\n    return t\n"
    }
)


def _create(client: Any, name: str, code: bytes, runtime: str, handler: str, **kw: Any) -> None:
    client.create_function(
        FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler, Code={"ZipFile": code}, **kw
    )


def _invoke_path(name: str) -> str:
    return f"/2015-03-31/functions/{name}/invocations"


def _ok(status: int, body: bytes, headers: http.client.HTTPMessage) -> None:
    if status != 200 or headers.get("X-Amz-Function-Error"):
        raise RuntimeError(f"invoke failed: {status} {body[:300]!r}")


def _post(
    conn: http.client.HTTPConnection,
    srv_url: str,
    name: str,
    body: bytes = b"{}",
    qualifier: str | None = None,
) -> int:
    path = _invoke_path(name) + (f"?Qualifier={qualifier}" if qualifier else "")
    headers = signed_headers("POST", srv_url + path, body)
    t0 = time.perf_counter_ns()
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    t1 = time.perf_counter_ns()
    _ok(resp.status, data, resp.headers)
    return t1 - t0


def cold_starts(
    srv: Any, client: Any, runtime: str, code: bytes, handler: str, n: int
) -> dict[str, Any]:
    names = [f"cold-{runtime.replace('.', '-')}-{i}" for i in range(n)]
    for name in names:
        _create(client, name, code, runtime, handler)
    for name in names:
        wait_active(client, name)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    samples = [_post(conn, srv.url, name) for name in names]
    conn.close()
    return summarize(samples)


def warm(srv: Any, client: Any, name: str, n: int, qualifier: str | None = None) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    for _ in range(200):
        _post(conn, srv.url, name, qualifier=qualifier)
    samples = [_post(conn, srv.url, name, qualifier=qualifier) for _ in range(n)]
    conn.close()
    return summarize(samples)


def warm_url(srv: Any, url: str, n: int) -> dict[str, Any]:
    host = url.split("//")[1].rstrip("/")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    samples = []
    for i in range(200 + n):
        t0 = time.perf_counter_ns()
        conn.request("GET", "/", headers={"Host": host})
        resp = conn.getresponse()
        resp.read()
        t1 = time.perf_counter_ns()
        if resp.status != 200:
            raise RuntimeError(f"function URL answered {resp.status}")
        if i >= 200:
            samples.append(t1 - t0)
    conn.close()
    return summarize(samples)


def _awslambdaric_zip() -> bytes:
    """AWS's Python runtime client from the venv, run unmodified as a provided bootstrap."""
    import importlib.util
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for module in ("awslambdaric", "runtime_client", "simplejson", "snapshot_restore_py"):
            spec = importlib.util.find_spec(module)
            assert spec is not None
            assert spec.origin is not None
            origin = Path(spec.origin)
            root = origin.parent if origin.name == "__init__.py" else origin
            paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
            for path in paths:
                if "__pycache__" in path.parts:
                    continue
                rel = path.relative_to(root.parent).as_posix()
                info = zipfile.ZipInfo(rel)
                info.external_attr = (0o100644) << 16
                zf.writestr(info, path.read_bytes())
        zf.writestr("app.py", "def handler(event, context):\n    return None\n")
        boot = zipfile.ZipInfo("bootstrap")
        boot.external_attr = (0o100755) << 16
        zf.writestr(boot, '#!/bin/sh\ncd "$LAMBDA_TASK_ROOT"\nexport PYTHONPATH=/var/task\n'
                          'exec /usr/bin/python3 -m awslambdaric "$_HANDLER"\n')  # fmt: skip
    return buf.getvalue()


def throughput(
    srv: Any, name: str, *, connections: int = 8, seconds: int = 4, runs: int = 3
) -> dict[str, Any]:
    """wrk against one function: the median of ``runs`` runs (a shared VM's speed drifts by
    ±15% from one run to the next), with the range, and CPU time per invoke over all of them."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    path = _invoke_path(name)
    headers = signed_headers("POST", srv.url + path, b"{}")
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items() if k != "Host")
    script = f'wrk.method = "POST"\nwrk.body = "{{}}"\n{lines}\n'
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    server0, sandboxes0 = _server_cpu_s(srv), _sandbox_cpu_s()
    done, measured = 0, []
    for _ in range(runs):
        out = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name,
             srv.url + path],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        done += int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        lat = dict(re.findall(r"^\s+(50|90|99)%\s+([\d.]+\w+)", out, re.M))
        measured.append((rps, int(non2xx.group(1)) if non2xx else 0, lat))
    server_s, sandboxes_s = _server_cpu_s(srv) - server0, _sandbox_cpu_s() - sandboxes0
    Path(f.name).unlink()
    rps, _, lat = sorted(measured, key=lambda m: m[0])[len(measured) // 2]
    return {
        "connections": connections,
        "seconds": seconds,
        "runs": runs,
        "invokes_per_s": rps,  # the median run's
        "invokes_per_s_range": [min(m[0] for m in measured), max(m[0] for m in measured)],
        "errors": sum(m[1] for m in measured),
        "latency": {f"p{k}": v for k, v in lat.items()},  # the median run's
        # CPU time per invoke, less noisy than the rate on a shared VM: the server process (its
        # threads, not its log writer) and every sandbox (cgroup CPU time: runtime and kernel).
        "server_cpu_us_per_invoke": round(server_s / done * 1e6, 1) if done else None,
        "sandbox_cpu_us_per_invoke": round(sandboxes_s / done * 1e6, 1) if done else None,
    }


def _server_cpu_s(srv: Any) -> float:
    fields = Path(f"/proc/{srv.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _sandbox_cpu_s() -> float:
    total = 0
    for usage in Path("/sys/fs/cgroup/cpuacct").glob("brazier-*/sbx-*/cpuacct.usage"):
        with contextlib.suppress(OSError, ValueError):
            total += int(usage.read_text())
    # Where the v2 core files stand in for cpuacct (sandboxes have no cpuacct cgroup then).
    for stat in Path("/sys/fs/cgroup/unified").glob("brazier-*/sbx-*/cpu.stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(stat.read_text().split("\n", 1)[0].split()[1]) * 1000  # usage_usec
    return total / 1e9


def _sandbox_procs() -> dict[str, list[int]]:
    """Every sandbox's processes (PID 1 and the runtime, ...), by sandbox cgroup."""
    by_sandbox: dict[str, list[int]] = {}
    for procs in Path("/sys/fs/cgroup/pids").rglob("cgroup.procs"):
        if "/brazier-" in str(procs) and procs.parent.name != procs.parents[1].name:
            parent = procs.parent
            if parent.parent.name.startswith("brazier-"):
                by_sandbox[str(parent)] = [int(p) for p in procs.read_text().split()]
    return by_sandbox


def _sandbox_pids() -> list[int]:
    return [p for pids in _sandbox_procs().values() for p in pids]


def _pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def idle_memory(srv: Any, client: Any, n: int) -> dict[str, Any]:
    """Start ``n`` environments (one per function), let them idle, measure PSS per sandbox."""
    before = set(_sandbox_pids())
    names = [f"idle-{i}" for i in range(n)]
    for name in names:
        _create(client, name, NOOP_PY, "python3.11", "app.handler")
    for name in names:
        wait_active(client, name)
    avail0 = _mem_available_kb()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    t0 = time.monotonic()
    for name in names:
        _post(conn, srv.url, name)
    started = time.monotonic() - t0
    conn.close()
    time.sleep(1.0)
    boxes = [ps for ps in _sandbox_procs().values() if not set(ps) & before]
    pids = [p for ps in boxes for p in ps]
    pss = sorted(sum(_pss_kb(p) for p in ps) for ps in boxes)  # per environment
    avail1 = _mem_available_kb()
    return {
        "environments": n,
        "sandbox_processes": len(pids),
        "pss_mib_median": round(pss[len(pss) // 2] / 1024, 2) if pss else None,
        "pss_mib_p90": round(pss[int(len(pss) * 0.9)] / 1024, 2) if pss else None,
        "mem_available_drop_mib_per_env": round((avail0 - avail1) / 1024 / n, 2),
        "seconds_to_start_all": round(started, 2),
    }


def _mem_available_kb() -> int:
    m = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return int(m.group(1)) if m else 0


async def _burst(srv: Any, name: str, n: int) -> dict[str, Any]:
    path = _invoke_path(name)
    body = json.dumps({"s": 1.0}).encode()
    headers = signed_headers("POST", srv.url + path, body)
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=srv.url, limits=limits, timeout=60) as http_client:
        t0 = time.time()
        replies = await asyncio.gather(
            *(http_client.post(path, content=body, headers=headers) for _ in range(n))
        )
    starts = sorted(
        float(r.text)
        for r in replies
        if r.status_code == 200 and "X-Amz-Function-Error" not in r.headers
    )
    return {
        "concurrency": n,
        "succeeded": len(starts),
        "seconds_until_all_running": round(starts[-1] - t0, 3) if starts else None,
        "seconds_until_half_running": round(starts[len(starts) // 2] - t0, 3) if starts else None,
    }


def _until_provisioned(client: Any, name: str, qualifier: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cfg = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        if cfg["Status"] == "READY":
            return
        time.sleep(0.05)
    raise RuntimeError("provisioned concurrency did not become READY")


def run(tmp: Path, *, quick: bool = False) -> dict[str, Any]:
    # 200 python cold starts: their p99 is then the 3rd slowest, not the slowest of 60.
    n = 60 if quick else 200
    n_node = 15 if quick else 30
    n_warm = 1000 if quick else 3000
    results: dict[str, Any] = {}
    with server(tmp) as srv:
        client = lambda_client(srv.url)
        results["cold_start_python3.11"] = cold_starts(
            srv, client, "python3.11", NOOP_PY, "app.handler", n
        )
        results["cold_start_nodejs20.x"] = cold_starts(
            srv, client, "nodejs20.x", NOOP_NODE, "index.handler", n_node
        )
        results["cold_start_awslambdaric"] = cold_starts(
            srv, client, "provided.al2023", _awslambdaric_zip(), "app.handler", 10
        )
        for mem in (128, 1769):
            name = f"warm-{mem}"
            _create(client, name, NOOP_PY, "python3.11", "app.handler", MemorySize=mem)
            wait_active(client, name)
            results[f"warm_python3.11_{mem}mb"] = warm(srv, client, name, n_warm)
            results[f"throughput_8_clients_{mem}mb"] = throughput(
                srv, name, seconds=3 if quick else 4, runs=2 if quick else 3
            )
        # Through an alias, a function URL, and a provisioned environment (1769 MB function).
        name = "warm-1769"
        client.publish_version(FunctionName=name)
        client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
        results["warm_via_alias"] = warm(srv, client, name, n_warm, qualifier="live")
        url = client.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
        client.add_permission(
            FunctionName=name, StatementId="url", Action="lambda:InvokeFunctionUrl",
            Principal="*", FunctionUrlAuthType="NONE",
        )  # fmt: skip
        results["warm_via_function_url"] = warm_url(srv, url, n_warm)
        client.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
        )
        _until_provisioned(client, name, "1")
        results["warm_provisioned"] = warm(srv, client, name, n_warm, qualifier="1")
        _create(client, "burst", SLEEP_PY, "python3.11", "app.handler", MemorySize=128, Timeout=30)
        wait_active(client, "burst")
        results["burst_0_to_100"] = asyncio.run(_burst(srv, "burst", 100))
    with server(tmp / "idle") as srv:
        client = lambda_client(srv.url)
        results["idle_environments"] = idle_memory(srv, client, 200 if quick else 1000)
    return results
