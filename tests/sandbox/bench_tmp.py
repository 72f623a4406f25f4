"""Measure what a disk-backed /tmp costs (run as root; not a test; decision 0022):

* start() latency of new environments (a fresh /tmp each), disk vs tmpfs, in alternating blocks
  so that a loaded host's noise falls on both; how many disks were made on the cold path;
* the pool's fill time per filesystem;
* MemAvailable and slab per pooled (idle) disk.

.venv/bin/python tests/sandbox/bench_tmp.py [starts per block] [blocks]
"""

from __future__ import annotations

import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brazier.sandbox import LinuxSandboxFactory, TmpVolume, open_sandbox_factory
from brazier.sandbox.tmpdisk import TmpDisks
from sandbox.conftest import code_dir, spec


def pct(xs: list[float]) -> str:
    xs = sorted(xs)
    return (f"p50 {statistics.median(xs):.2f} ms  p90 {xs[int(len(xs) * 0.9) - 1]:.2f} ms"
            f"  p99 {xs[max(0, int(len(xs) * 0.99) - 1)]:.2f} ms  (n={len(xs)})")  # fmt: skip


def meminfo(key: str) -> int:
    m = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return int(m.group(1)) if m else 0


async def starts(f: LinuxSandboxFactory, code: Path, n: int) -> list[float]:
    times = []
    for _ in range(n):
        vol = TmpVolume(512)
        t = time.perf_counter()
        s = await f.start(spec(code, memory_mb=128, ephemeral_mb=512, tmp=vol))
        times.append((time.perf_counter() - t) * 1000)
        await s.kill()
        await vol.aclose()
        await asyncio.sleep(0.02)  # a client's pace between cold starts
    return times


async def main(n: int, blocks: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        code = code_dir(Path(tmp), "#!/bin/sh\nexit 0\n")
        nodisk = Path(tmp) / "file"
        nodisk.write_text("")
        disk_times: list[float] = []
        tmpfs_times: list[float] = []
        async with (
            open_sandbox_factory(tmp_disk_dir=Path(tmp)) as disk,
            open_sandbox_factory(tmp_disk_dir=nodisk / "x") as plain,
        ):
            assert disk.tmp_disks is not None and plain.tmp_disks is None
            await starts(disk, code, 3)  # zygote, template, pool
            await starts(plain, code, 3)
            await asyncio.sleep(2)
            for _ in range(blocks):
                disk_times += await starts(disk, code, n)
                tmpfs_times += await starts(plain, code, n)
            pool = disk.tmp_disks
            print("start(), disk /tmp: ", pct(disk_times))
            print("start(), tmpfs /tmp:", pct(tmpfs_times))
            print(f"disks made on the cold path: {pool.made_on_demand} of {pool.taken}")
            fills = [t.seconds * 1000 for t in pool.fill_times]
            print("pool fill per filesystem:", pct(fills))
        # Idle cost of a ready disk: 100 of them, nothing written.
        disks = TmpDisks(Path(tmp), per_size=100)
        avail0, slab0 = meminfo("MemAvailable"), meminfo("Slab")
        t0 = time.perf_counter()
        task = asyncio.create_task(disks.run())
        while disks.pooled(512) < 100:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        took = time.perf_counter() - t0
        await asyncio.sleep(1)
        avail1, slab1 = meminfo("MemAvailable"), meminfo("Slab")
        print(f"100 pooled disks in {took:.2f} s: MemAvailable -{(avail0 - avail1) / 100:.0f}"
              f" KiB, Slab +{(slab1 - slab0) / 100:.0f} KiB per disk")  # fmt: skip
        disks.close()
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50,
                     int(sys.argv[2]) if len(sys.argv) > 2 else 4))  # fmt: skip
