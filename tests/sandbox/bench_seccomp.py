"""Measure what the seccomp filter costs each syscall, inside a real sandbox (run as root; not a
test). A static C runtime times 10^6 raw calls of a few syscalls; median of 7 sandboxes.

.venv/bin/python tests/sandbox/bench_seccomp.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brazier.sandbox import LinuxSandboxFactory
from brazier.sandbox.seccomp import build_filter_bpf
from sandbox.conftest import code_dir, json_lines, run, spec

# (name, x86_64 number, arg0): cheap calls spread over the table; read(-1) fails with EBADF.
CALLS = [("getppid", 110, 0), ("read(-1)", 0, -1), ("futex(0)", 202, 0), ("statx(-1)", 332, -1),
         ("sendmsg(-1)", 46, -1), ("socket(AF_INET,0)", 41, 2)]  # fmt: skip
N = 1_000_000

C = r"""
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static const long calls[][2] = { @CALLS@ };
int main(void) {
    printf("{\"ns\": [");
    for (unsigned i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long k = 0; k < @N@; k++) {
            long r = syscall(calls[i][0], calls[i][1], 0L, 0L, 0L, 0L, 0L);
            if (calls[i][0] == 41 && r >= 0) close((int)r);
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / @N@;
        printf("%s%.1f", i ? ", " : "", ns);
    }
    printf("]}\n");
    return 0;
}
"""


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    tmp.chmod(0o755)
    d = code_dir(tmp, "", name="b.c")
    body = ", ".join(f"{{{nr}L, {a0}L}}" for _, nr, a0 in CALLS)
    (d / "b.c").write_text(C.replace("@CALLS@", body).replace("@N@", str(N)))
    subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "bootstrap"), str(d / "b.c")],
                   check=True)  # fmt: skip

    async def go(f: LinuxSandboxFactory) -> list[list[float]]:
        rows = []
        for _ in range(7):
            sbx = await f.start(spec(d))
            r = await json_lines(sbx)
            await sbx.kill()
            rows.append(r["ns"])
        return rows

    rows = run(go, pool_size=0)
    print(f"filter: {len(build_filter_bpf()) // 8} BPF instructions")
    for i, (name, _, _) in enumerate(CALLS):
        print(f"{name:18} {statistics.median(row[i] for row in rows):7.1f} ns/call")


if __name__ == "__main__":
    main()
