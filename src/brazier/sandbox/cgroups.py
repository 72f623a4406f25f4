"""Per-sandbox cgroups: one Protocol (``CgroupParent`` makes ``SandboxCgroup``s), one class per
host mode. ``open_cgroup_tree`` picks it from ``cgroup_mode.detect()``: v1 and hybrid hosts use
the classes of this module, unified v2 hosts those of ``cgroups_v2`` (decision 0023). The limit
values (memory, CPU share, pids) are computed here once for both.

v1/hybrid layout: in the v1 hierarchies we need (memory, cpu, pids) and in the controller-less
v2 mount,
``<caller's own cgroup>/brazier-<factory>/<sandbox>``. The caller's own cgroup comes from
/proc/self/cgroup (memory puts each shell under /process_api/<id>), so nothing is created outside
what the caller owns. The v2 cgroup is used only for its core files: ``cgroup.freeze`` (0.05 ms vs
0.15 ms for the v1 freezer), ``cgroup.kill`` and ``cpu.stat``; without them, sandboxes also get
v1 freezer and cpuacct cgroups.

Memory: ``memory.limit_in_bytes = memory_mb``, as Lambda: /tmp is a disk of its own (see
tmpdisk.py, decision 0022) whose page cache is reclaimable. Only where /tmp falls back to a tmpfs
(no loop devices), whose pages are charged to the memcg that writes them, is the limit
``memory_mb + ephemeral_mb``. Reported usage subtracts unmapped file cache (and tmpfs pages).

CPU: Lambda gives one vCPU at 1769 MB, linearly (so 128 MB is 7.2 % of a CPU, 10240 MB is about
6 vCPUs). quota = period * memory_mb / 1769, at least period/20, at most the machine's CPUs. The
period is 20 ms, not the kernel's default 100 ms: a throttled sandbox then stalls for at most
~19 ms instead of ~93 ms, so a small function that used up its share answers its next event
promptly. Init runs unthrottled (``set_limits`` leaves the quota off until ``limit_cpu``), as
Lambda boosts the INIT phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Protocol

from .cgroup_delegation import SERVER_LEAF
from .cgroup_mode import CgroupMode, detect
from .errors import SandboxUnavailable
from .procfiles import KeptFile

V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
# A sandbox's v1 cgroups when the v2 core files stand in for the freezer and cpuacct.
PER_SANDBOX_WITH_V2 = ("memory", "cpu", "pids")
CFS_PERIOD_US = 20_000
DEFAULT_SHARES, BACKGROUND_SHARES = 1024, 2  # cpu.shares: the kernel's default and minimum
MB_PER_VCPU = 1769
PIDS_MAX = 1024
# All of a factory's sandboxes together may hold at most this share of the host's pid_max
# (pids.max of the parent cgroup), so that busy environments cannot take the host's last pids.
TOTAL_PIDS_SHARE = 0.75


def total_pids_max(pid_max: int | None = None) -> int:
    """The parent cgroup's pids.max: ``TOTAL_PIDS_SHARE`` of /proc/sys/kernel/pid_max."""
    if pid_max is None:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    return max(PIDS_MAX, int(pid_max * TOTAL_PIDS_SHARE))


MIB = 1 << 20


def memory_limit_bytes(memory_mb: int, tmp_in_memory_mb: int = 0) -> int:
    """The sandbox's memory limit, in every cgroup mode: MemorySize, plus the size of /tmp only
    when /tmp is a tmpfs (the fallback without loop devices, whose pages count as memory;
    decision 0022)."""
    return (memory_mb + tmp_in_memory_mb) * MIB


class SandboxCgroup(Protocol):
    """One sandbox's cgroup(s): limits, accounting, freezing and killing."""

    removed: bool

    def create(self, *, background: bool = False) -> None: ...
    def procs_files(self) -> list[str]: ...
    def set_limits(self, memory_mb: int, tmp_in_memory_mb: int = 0) -> None: ...
    def limit_cpu(self) -> None: ...
    def memory_peak(self, at_least: int = 0) -> int: ...
    def reset_memory_peak(self) -> None: ...
    def oom_kills(self) -> int: ...
    def cpu_time_ns(self) -> int: ...
    async def freeze(self, frozen: bool) -> None: ...
    def kill(self) -> None: ...
    async def remove(self) -> None: ...


class CgroupParent(Protocol):
    """A factory's parent cgroup(s). ``create`` and ``remove`` are idempotent."""

    def create(self) -> None: ...
    def remove(self) -> None: ...
    def child(self, sandbox_id: str) -> SandboxCgroup: ...


def open_cgroup_tree(name: str, mode: CgroupMode | None = None) -> CgroupParent:
    """The parent cgroup(s) named ``name`` for this host's cgroup mode (not created yet)."""
    if (mode or detect()) is CgroupMode.V2:
        from .cgroups_v2 import V2CgroupTree  # imports this module's limits

        return V2CgroupTree(name)
    return V1CgroupTree(name)


def cpu_quota_us(memory_mb: int, cpus: int | None = None) -> int:
    cpus = cpus or os.cpu_count() or 1
    quota = CFS_PERIOD_US * memory_mb // MB_PER_VCPU
    return max(CFS_PERIOD_US // 20, min(quota, CFS_PERIOD_US * cpus))


def cgroup_mounts() -> tuple[dict[str, Path], Path | None]:
    """Every v1 controller's mount point, and the cgroup2 mount (if any)."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _src, opts = right.split()[:3]
            mountpoint = Path(left.split()[4])
            if fstype == "cgroup2":
                v2 = mountpoint
            elif fstype == "cgroup":
                for opt in opts.split(","):
                    v1[opt] = mountpoint
    return v1, v2


def _mounts() -> tuple[dict[str, Path], Path | None]:
    """``cgroup_mounts`` narrowed to the v1 controllers brazier uses."""
    v1, v2 = cgroup_mounts()
    return {c: p for c, p in v1.items() if c in V1_CONTROLLERS}, v2


def own_cgroups() -> dict[str, str]:
    """This process's cgroup per v1 controller, and under ``"unified"`` its v2 cgroup."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            for name in names.split(",") if names else ["unified"]:
                own[name] = path.lstrip("/")
    return own


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_pid(name: str) -> int | None:
    """The pid encoded in a factory name ``brazier-<pid>-<hex>``, if any."""
    parts = name.split("-")
    if len(parts) >= 3 and parts[0] == "brazier" and parts[1].isdigit():
        return int(parts[1])
    return None


def sweep_stale_trees() -> int:
    """Remove the cgroups of factories whose process died without cleaning up (kill -9).

    Only ``brazier-<pid>-*`` directories whose pid is gone are touched; their sandboxes died with
    the pid namespace of each sandbox's PID 1 or are killed here first. Returns how many parents
    were removed."""
    v1, v2 = _mounts()
    own = own_cgroups()
    roots = [v1[c] / own.get(c, "") for c in V1_CONTROLLERS if c in v1]
    if v2 is not None:
        unified = v2 / own.get("unified", "")
        roots.append(unified)
        if unified.name == SERVER_LEAF:  # v2: the factories are siblings of the server's leaf
            roots.append(unified.parent)
    removed = 0
    for root in roots:
        with contextlib.suppress(OSError):
            for parent in root.iterdir():
                pid = owner_pid(parent.name)
                if pid is None or pid_alive(pid) or not parent.is_dir():
                    continue
                for child in [c for c in parent.iterdir() if c.is_dir()]:
                    with contextlib.suppress(OSError):
                        for task in (child / "cgroup.procs").read_text().split():
                            # SAFETY: a task left in a dead factory's sandbox cgroup is an
                            # orphaned sandbox process; nothing else is ever put there.
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(int(task), 9)
                        _rmdir_when_empty(child)
                with contextlib.suppress(OSError):
                    parent.rmdir()
                    removed += 1
    return removed


def _rmdir_when_empty(d: Path, tries: int = 200) -> None:
    """rmdir a cgroup whose tasks were just killed: EBUSY until the kernel has reaped them."""
    for _ in range(tries):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.005)


class V1CgroupTree:
    """The factory's parent cgroups on a v1 or hybrid host (``create``, ``remove``: idempotent)."""

    def __init__(self, name: str) -> None:
        v1, v2 = _mounts()
        missing = [c for c in V1_CONTROLLERS if c not in v1]
        if missing:
            raise SandboxUnavailable(f"cgroup v1 controllers not mounted: {', '.join(missing)}")
        own = own_cgroups()
        self.parents = {c: v1[c] / own.get(c, "") / name for c in V1_CONTROLLERS}
        self.v2_parent = v2 / own.get("unified", "") / name if v2 else None

    def create(self) -> None:
        try:
            for d in {*self.parents.values()}:
                # SAFETY: a new directory under the caller's own cgroup; nothing else uses it.
                d.mkdir(exist_ok=True)
        except OSError as e:
            raise SandboxUnavailable(f"cannot create cgroups (are we root?): {e}") from e
        # SAFETY: a limit on our own new parent cgroup, which holds only our sandboxes.
        _write(str(self.parents["pids"] / "pids.max"), str(total_pids_max()))
        if self.v2_parent is not None:
            try:
                self.v2_parent.mkdir(exist_ok=True)
                if not (self.v2_parent / "cgroup.freeze").exists():
                    self.v2_parent.rmdir()
                    self.v2_parent = None
            except OSError:
                self.v2_parent = None

    def remove(self) -> None:
        for d in [*set(self.parents.values()), self.v2_parent]:
            if d is not None:
                with contextlib.suppress(FileNotFoundError, OSError):
                    d.rmdir()

    def child(self, sandbox_id: str) -> V1SandboxCgroup:
        """A sandbox's cgroups (not made yet: ``create``). With the v2 core files (freeze, kill,
        cpu.stat) there, the v1 freezer and cpuacct hierarchies are not used: two directories
        fewer to make and remove, and two migrations fewer for PID 1, per environment."""
        used: tuple[str, ...]
        if self.v2_parent is not None:
            used = PER_SANDBOX_WITH_V2
            v2: Path | None = Path(f"{self.v2_parent}/{sandbox_id}")
        else:
            used, v2 = V1_CONTROLLERS, None
        dirs = {c: Path(f"{self.parents[c]}/{sandbox_id}") for c in used}
        return V1SandboxCgroup(dirs, v2)


def _write(path: str | Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


class V1SandboxCgroup:
    def __init__(self, dirs: dict[str, Path], v2: Path | None) -> None:
        self.dirs = dirs
        self.v2 = v2
        self.removed = False
        # The directories and files used on every start, as strings made once: pathlib joins
        # were a tenth of the server's CPU per cold start (cProfile with a CPU-time clock).
        self._mkdirs = [str(d) for d in {*dirs.values()}] + ([str(v2)] if v2 else [])
        cpu, mem = str(dirs["cpu"]), str(dirs["memory"])
        self._cpu_shares = cpu + "/cpu.shares"
        self._cpu_quota = cpu + "/cpu.cfs_quota_us"
        self._cpu_period = cpu + "/cpu.cfs_period_us"
        self._mem_limit = mem + "/memory.limit_in_bytes"
        self._memsw_limit = mem + "/memory.memsw.limit_in_bytes"
        self._pids_max = str(dirs["pids"]) + "/pids.max"
        self._procs = [d + "/cgroup.procs" for d in self._mkdirs]
        self._peak_file: KeptFile | None = None
        self._reset_file: KeptFile | None = None
        # The freezer's control and state files, written and polled on every freeze and thaw.
        if v2 is not None:
            self._freeze_ctl = KeptFile(str(v2 / "cgroup.freeze"), os.O_WRONLY)
            self._freeze_state = KeptFile(str(v2 / "cgroup.events"), os.O_RDONLY)
        else:
            state = str(dirs["freezer"] / "freezer.state")
            self._freeze_ctl = KeptFile(state, os.O_WRONLY)
            self._freeze_state = KeptFile(state, os.O_RDONLY)

    def create(self, *, background: bool = False) -> None:
        """Make the cgroups. ``background``: an environment made ahead for the pool builds its
        root at the lowest CPU weight, so that refilling the pool does not slow the cold starts
        taking from it (``set_limits`` restores the weight)."""
        for d in self._mkdirs:
            # SAFETY: a fresh cgroup for one sandbox, under the factory's parent.
            os.mkdir(d)
        _write(self._pids_max, str(PIDS_MAX))
        if background:
            _write(self._cpu_shares, str(BACKGROUND_SHARES))
        _write(self._cpu_period, str(CFS_PERIOD_US))
        peak = str(self.dirs["memory"]) + "/memory.max_usage_in_bytes"
        self._peak_file = KeptFile(peak, os.O_RDONLY)
        self._reset_file = KeptFile(peak, os.O_WRONLY)

    def procs_files(self) -> list[str]:
        return list(self._procs)

    def set_limits(self, memory_mb: int, tmp_in_memory_mb: int = 0) -> None:
        """``tmp_in_memory_mb``: the size of a tmpfs /tmp (the fallback without loop devices),
        whose pages count as memory; 0 for a disk-backed /tmp (decision 0022)."""
        self._tmp_in_memory = tmp_in_memory_mb > 0
        limit = str(memory_limit_bytes(memory_mb, tmp_in_memory_mb))
        # SAFETY: the sandbox is idle (waiting for its spec), far below any limit we set.
        _write(self._mem_limit, limit)
        with contextlib.suppress(OSError):  # absent without swap accounting
            _write(self._memsw_limit, limit)
        _write(self._cpu_shares, str(DEFAULT_SHARES))
        # The quota stays unlimited (a new cgroup's default) through init: see limit_cpu.
        self._quota_us: int | None = cpu_quota_us(memory_mb)

    def limit_cpu(self) -> None:
        """Apply the memory-proportional CPU share (after init). Idempotent."""
        quota = getattr(self, "_quota_us", None)
        if quota is not None and not self.removed:
            with contextlib.suppress(OSError):
                # SAFETY: a cgroup of this sandbox only; lowering a quota cannot fail a task.
                _write(self._cpu_quota, str(quota))

    def _read(self, controller: str, name: str) -> str:
        with open(self.dirs[controller] / name) as f:
            return f.read()

    def _stats(self) -> dict[str, int]:
        stats = {}
        for line in self._read("memory", "memory.stat").splitlines():
            k, _, v = line.partition(" ")
            if k.startswith("total_"):
                stats[k] = int(v)
        return stats

    def memory_peak(self, at_least: int = 0) -> int:
        """Peak charge minus the page cache of files nobody maps (what /tmp's files, and the
        code read, cost: reclaimable), and minus tmpfs pages when /tmp is a tmpfs. The cache is
        the current one, not the one at the peak (v1 keeps no peak per kind): files deleted since
        the peak make this an overestimate, which ``at_least`` (VmHWM) cannot correct.
        ``memory.stat`` is long to read and parse, so it is read only when the raw peak exceeds
        ``at_least`` (what the caller already knows)."""
        raw = self._peak_file.read(64) if self._peak_file is not None else b""
        peak = int(raw or self._read("memory", "memory.max_usage_in_bytes"))
        if peak <= at_least:
            return peak
        stat = self._stats()
        file = stat.get("total_active_file", 0) + stat.get("total_inactive_file", 0)
        excluded = max(0, file - stat.get("total_mapped_file", 0))
        if getattr(self, "_tmp_in_memory", True):
            excluded += stat.get("total_shmem", 0)
        return max(0, peak - excluded)

    def reset_memory_peak(self) -> None:
        if self._reset_file is None:
            _write(self.dirs["memory"] / "memory.max_usage_in_bytes", "0")
        else:
            # SAFETY: resets the peak of this sandbox's own memory cgroup; nothing else reads it.
            self._reset_file.write(b"0")

    def oom_kills(self) -> int:
        for line in self._read("memory", "memory.oom_control").splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def cpu_time_ns(self) -> int:
        if self.v2 is None:
            return int(self._read("cpuacct", "cpuacct.usage"))
        with open(f"{self.v2}/cpu.stat") as f:  # a core file of every v2 cgroup
            for line in f:
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) * 1000
        return 0

    async def freeze(self, frozen: bool) -> None:
        if self.v2 is not None:
            self._freeze_ctl.put(b"1" if frozen else b"0")
            want, events = b"frozen 1" if frozen else b"frozen 0", True
        else:
            want, events = b"FROZEN" if frozen else b"THAWED", False
            self._freeze_ctl.put(want)
        state = self._freeze_state
        for i in range(2000):
            text = state.read(256)
            if (want in text.splitlines()) if events else text.strip() == want:
                return
            await asyncio.sleep(0 if i < 20 else 0.001)
        raise TimeoutError(f"cgroup did not reach {want.decode()!r}")

    def kill(self) -> None:
        """SIGKILL everything inside. The v2 core cgroup.kill also kills frozen tasks."""
        if self.v2 is not None:
            with contextlib.suppress(OSError):
                # SAFETY: this cgroup holds only this sandbox's processes.
                _write(self.v2 / "cgroup.kill", "1")
                return
        with contextlib.suppress(OSError):
            for pid in self._read("pids", "cgroup.procs").split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
            if "freezer" in self.dirs:  # v1 freezing holds SIGKILL back; v2 lets it through
                _write(self.dirs["freezer"] / "freezer.state", "THAWED")

    async def remove(self) -> None:
        """Remove every directory; retries while the kernel still lists exiting tasks."""
        if self.removed:
            return
        for kept in (self._peak_file, self._reset_file, self._freeze_ctl, self._freeze_state):
            if kept is not None:
                kept.close()
        for d in [*set(self.dirs.values()), self.v2]:
            if d is None:
                continue
            for _ in range(500):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    await asyncio.sleep(0.002)
        self.removed = True
