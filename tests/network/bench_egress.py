"""Measure egress (decision 0025; run as root, not a test):

.venv/bin/python tests/network/bench_egress.py

cold start (pooled, python3.11 and provided) without and with egress, veth set-up per pooled
environment, idle memory per environment, TCP connect from a warm function to a host-side
service, and a 100 MB download from a test host."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brazier.model.egress import EGRESS_INTERNET
from brazier.sandbox import LinuxSandboxFactory, open_sandbox_factory
from brazier.sandbox.base import SandboxSpec
from brazier.sandbox.network import HOST_NAME, NetworkConfig
from network.conftest import code_dir, test_internet
from sandbox.conftest import spec


def pct(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {
        "p50": round(statistics.median(xs), 3),
        "p99": round(xs[max(0, int(len(xs) * 0.99) - 1)], 3),
        "n": len(xs),
    }


async def cold_starts(f: LinuxSandboxFactory, sp: SandboxSpec, n: int) -> list[float]:
    times = []
    for _ in range(n):
        while f.statistics().pooled < f.statistics().zygotes:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.03)  # let the refill settle: measure start(), not contention
        t = time.monotonic_ns()
        s = await f.start(sp)
        times.append((time.monotonic_ns() - t) / 1e6)
        await s.kill()
    return times


def mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


async def idle_cost(network: NetworkConfig | None, tmp: Path, n: int) -> float:
    """MemAvailable drop per idle pooled environment (kernel memory included), in KiB."""
    async with open_sandbox_factory(pool_size=0, node_pool_size=0, network=network) as f:
        await f.prewarm(["python3.11"])
        await asyncio.sleep(0.5)
        zyg = next(iter(f._zygotes.values()))
        before = mem_available_kb()
        boxes = [await f._prefork(zyg) for _ in range(n)]
        await asyncio.sleep(0.5)
        after = mem_available_kb()
        await asyncio.gather(*(b.kill() for b in boxes))
    return (before - after) / n


CONNECT = r"""
#!/usr/bin/python3
import json, os, socket, time
host, port = os.environ["TARGET"].split(":")
addr = socket.gethostbyname(host)
ts = []
for _ in range(300):
    t = time.perf_counter()
    s = socket.create_connection((addr, int(port)))
    ts.append((time.perf_counter() - t) * 1000)
    s.close()
ts.sort()
print(json.dumps({"p50": ts[len(ts) // 2], "p99": ts[int(len(ts) * .99) - 1]}), flush=True)
"""

DOWNLOAD = r"""
#!/usr/bin/python3
import json, os, socket, time
size = 100 * 1024 * 1024
s = socket.create_connection((os.environ["HOST"], 80))
buf = bytearray(1 << 20)
t = time.perf_counter()
s.sendall(f"GET /bytes/{size} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
got = 0
while n := s.recv_into(buf):
    got += n
dt = time.perf_counter() - t
print(json.dumps({"bytes": got, "seconds": dt, "gbit_s": got * 8 / dt / 1e9}), flush=True)
"""


async def run_probe(f: LinuxSandboxFactory, code: Path, env: dict[str, str]) -> dict[str, Any]:
    sbx = await f.start(SandboxSpec(runtime="provided.al2023", code_dir=code, handler="h",
                                    env=env, egress=EGRESS_INTERNET, memory_mb=1024))  # fmt: skip
    out = b""
    while chunk := await sbx.read_output():
        out += chunk
    await sbx.kill()
    return dict(json.loads(out.decode().splitlines()[-1]))


def host_service() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(512)

    def accept() -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            c.close()

    threading.Thread(target=accept, daemon=True).start()
    return srv, srv.getsockname()[1]


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    tmp.chmod(0o755)  # noqa: ASYNC240
    py = spec(code_dir(tmp / "py", "def h(e, c):\n    return 1\n").parent / "task",
              runtime="python3.11", handler="app.h") if (tmp / "py").mkdir() is None else None  # fmt: skip
    (tmp / "py" / "task" / "bootstrap").rename(tmp / "py" / "task" / "app.py")
    sh = spec(code_dir(tmp / "sh", "#!/bin/sh\nexec sleep 1000\n")) if (tmp / "sh").mkdir() is None else None  # fmt: skip
    assert py is not None and sh is not None
    report: dict[str, Any] = {}
    srv, port = host_service()
    with test_internet() as inet:
        config = NetworkConfig(upstream_dns=inet.address, allow_host_ports=(port,))
        attach: list[float] = []
        async with open_sandbox_factory(pool_size=2, node_pool_size=0, network=config) as f:
            net = f._net
            assert net is not None
            original = net.attach

            async def timed(pid: int) -> Any:
                t = time.monotonic_ns()
                try:
                    return await original(pid)
                finally:
                    attach.append((time.monotonic_ns() - t) / 1e6)

            net.attach = timed  # type: ignore[method-assign]
            (tmp / "connect").mkdir()
            code = code_dir(tmp / "connect", CONNECT)
            report["tcp connect to a host service (host.brazier.internal)"] = await run_probe(
                f, code, {"TARGET": f"{HOST_NAME}:{port}"}
            )
            (tmp / "dl").mkdir()
            code = code_dir(tmp / "dl", DOWNLOAD)
            report["100 MB download from a test host"] = [
                await run_probe(f, code, {"HOST": inet.address}) for _ in range(3)
            ]
            report["veth set-up per pooled environment"] = pct(attach)
        # Cold starts interleaved (one factory of each kind open at once; the order alternates
        # too: whichever goes second in a pair measured up to 2 ms slower on this shared host).
        async with (
            open_sandbox_factory(pool_size=2, node_pool_size=0) as plain,
            open_sandbox_factory(pool_size=2, node_pool_size=0, network=config) as egress,
        ):
            assert egress._net is not None
            for name, sp in (("python3.11", py), ("provided/sh", sh)):
                times: dict[str, list[float]] = {"loopback only": [], "egress": []}
                for i in range(105):
                    pair = (("loopback only", plain), ("egress", egress))
                    for label, f in pair if i % 2 else pair[::-1]:
                        t = await cold_starts(f, sp, 1)
                        if i >= 5:
                            times[label] += t
                for label, xs in times.items():
                    report[f"cold start {name}, {label}"] = pct(xs)
        for label, network in (("loopback only", None), ("egress", config)):
            report[f"MemAvailable drop per idle environment (KiB), {label}"] = round(
                await idle_cost(network, tmp, 100), 1
            )
    srv.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
