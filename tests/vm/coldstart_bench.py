"""Cold-start (``start()``) latency in this host's cgroup mode, for decision 0023: run it on the
host (v1/hybrid) and in the VM (v2, ``VM_BENCH=1 scripts/vm-test.sh``). Not a test.

.venv/bin/python tests/vm/coldstart_bench.py [N]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brazier.sandbox import open_sandbox_factory
from brazier.sandbox.cgroup_mode import detect
from sandbox.bench_start import IDLE_RUNTIME, starts
from sandbox.conftest import code_dir, init_dir_with, spec


def summary(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"median_ms": round(statistics.median(xs), 2), "p99_ms": round(xs[-1 if len(xs) < 100 else int(len(xs) * 0.99)], 2), "n": len(xs)}  # fmt: skip


async def main(n: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    tmp.chmod(0o755)  # noqa: ASYNC240
    init = init_dir_with(tmp, "python_runtime.py", IDLE_RUNTIME)
    py = spec(code_dir(tmp, "x = 1\n", name="app.py"), runtime="python3.11", handler="app.h")
    sh = spec(code_dir(tmp, "#!/bin/sh\nexec sleep 1000\n"))
    out: dict[str, object] = {"cgroup_mode": detect().value}
    for pool in (0, 2):
        async with open_sandbox_factory(pool_size=pool, init_dir=init) as f:
            for name, sp in (("python3.11", py), ("provided-sh", sh)):
                await starts(f, sp, 3, pool > 0)
                out[f"{name} pool={pool}"] = summary(await starts(f, sp, n, pool > 0))
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
