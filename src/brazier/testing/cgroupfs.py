"""A fake cgroup2 directory tree for unit tests of the v2 file logic (``cgroups_v2``,
``cgroup_delegation``): plain files in a temporary directory, shaped like a delegated cgroup2
mount. Writes are stored and nothing is enforced, so the real test of v2 stays the VM of
scripts/vm-test.sh; this one checks what is written where and how files are parsed."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CORE_FILES = {
    "cgroup.procs": "",
    "cgroup.subtree_control": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
}
CONTROLLER_FILES = {
    "memory.max": "max\n",
    "memory.swap.max": "max\n",
    "memory.oom.group": "0\n",
    "memory.current": "0\n",
    "memory.peak": "0\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    "memory.stat": "anon 0\nfile 0\nshmem 0\n",
    "cpu.max": "max 100000\n",
    "cpu.weight": "100\n",
    "pids.max": "max\n",
}


class FakeCgroupFs:
    """``root`` plays /sys/fs/cgroup; ``cgroup`` makes one cgroup directory as the kernel would
    (with its files); ``proc_cgroup`` writes a /proc/self/cgroup naming one of them."""

    def __init__(self, root: Path, controllers: Iterable[str] = ("cpu", "memory", "pids")):
        self.root = root
        self.controllers = tuple(controllers)
        self.cgroup("", controllers=self.controllers)

    def cgroup(
        self,
        rel: str,
        *,
        procs: Iterable[int] = (),
        controllers: Iterable[str] | None = None,
        without: Iterable[str] = (),
    ) -> Path:
        d = self.root / rel if rel else self.root
        d.mkdir(parents=True, exist_ok=True)
        files = {**CORE_FILES, **CONTROLLER_FILES}
        files["cgroup.controllers"] = " ".join(
            self.controllers if controllers is None else controllers
        )
        files["cgroup.procs"] = "".join(f"{p}\n" for p in procs)
        for name, text in files.items():
            if name not in without:
                (d / name).write_text(text)
        return d

    def proc_cgroup(self, rel: str) -> str:
        """The path of a /proc/self/cgroup file that places the caller in ``rel``."""
        f = self.root.parent / f"proc-cgroup-{rel.replace('/', '_') or 'root'}"
        f.write_text(f"0::/{rel}\n")
        return str(f)
