"""Measure start() latency, idle PSS and freeze/thaw latency (run as root; not a test).

.venv/bin/python tests/sandbox/bench_start.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brazier.sandbox import LinuxSandboxFactory, Sandbox, open_sandbox_factory
from sandbox.conftest import code_dir, init_dir_with, spec

IDLE_RUNTIME = """
import os, socket
def main(handler):
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
    s = socket.create_connection((host, int(port)))
    s.recv(1)  # idle until killed, like a runtime blocked in /next
"""


def pct(xs: list[float]) -> str:
    xs = sorted(xs)
    p90 = xs[int(len(xs) * 0.9) - 1]
    return f"median {statistics.median(xs):.2f} ms  p90 {p90:.2f} ms  (n={len(xs)})"


def pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def procs(s: Sandbox) -> list[int]:
    """Every process of the sandbox (its pids cgroup)."""
    with open(s.cgroup.procs_files()[0]) as f:  # type: ignore[attr-defined]
        return [int(p) for p in f.read().split()]


async def starts(f: LinuxSandboxFactory, sp: object, n: int, pooled: bool) -> list[float]:
    times = []
    for i in range(n):
        if pooled and i:
            while f.statistics().pooled < 2 * f.statistics().zygotes:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        t = time.monotonic_ns()
        s = await f.start(sp)  # type: ignore[arg-type]
        times.append((time.monotonic_ns() - t) / 1e6)
        await s.kill()
    return times


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    tmp.chmod(0o755)  # noqa: ASYNC240
    init = init_dir_with(tmp, "python_runtime.py", IDLE_RUNTIME)
    py = spec(code_dir(tmp, "x = 1\n", name="app.py"), runtime="python3.11", handler="app.h")
    sh = spec(code_dir(tmp, "#!/bin/sh\nexec sleep 1000\n"))
    for pool in (0, 2):
        async with open_sandbox_factory(pool_size=pool, init_dir=init) as f:
            for name, sp in (("python3.11", py), ("provided/sh", sh)):
                await starts(f, sp, 5, pool > 0)
                print(f"start {name:12} pool={pool}: {pct(await starts(f, sp, 60, pool > 0))}")
    async with open_sandbox_factory(pool_size=0, init_dir=init) as f:
        boxes: list[Sandbox] = []
        conns = []  # keep the runtimes blocked in recv()
        for _ in range(50):
            s = await f.start(py)
            conns.append((await asyncio.get_running_loop().sock_accept(s.listener))[0])
            boxes.append(s)
        await asyncio.sleep(0.3)
        pss = [sum(pss_kb(p) for p in procs(s)) / 1024 for s in boxes]  # PID 1 + runtime
        peak = [s.memory_peak_bytes() / 2**20 for s in boxes]
        print(f"idle python3.11 sandbox PSS: median {statistics.median(pss):.2f} MB; "
              f"memory_peak_bytes median {statistics.median(peak):.1f} MB")  # fmt: skip
        fr, th = [], []
        for s in boxes[:10]:
            for _ in range(10):
                t = time.monotonic_ns()
                await s.freeze()
                t2 = time.monotonic_ns()
                await s.thaw()
                fr.append((t2 - t) / 1e6)
                th.append((time.monotonic_ns() - t2) / 1e6)
        print(f"freeze: {pct(fr)}\nthaw:   {pct(th)}")
        t = time.monotonic_ns()
        await asyncio.gather(*(s.kill() for s in boxes))
        print(f"kill of 50 (concurrent): {(time.monotonic_ns() - t) / 1e6:.1f} ms")
        for c in conns:
            c.close()


if __name__ == "__main__":
    asyncio.run(main())
