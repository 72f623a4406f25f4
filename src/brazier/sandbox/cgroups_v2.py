"""Per-sandbox cgroups on a unified (v2-only) host.

Layout: ``<delegated base>/brazier-<factory>/<sandbox>`` where the base is the server's own
cgroup, delegated to it (``cgroup_delegation``); the server itself lives in the leaf
``<base>/brazier-server``. Controllers cpu, memory and pids are enabled down to each sandbox.

Per sandbox: ``memory.max`` (``memory_limit_bytes``, the same value as v1), ``memory.swap.max``
0, ``memory.oom.group`` 1 (an OOM kill takes the whole environment, as Lambda resets it),
``memory.peak`` for Max Memory Used (kernel >= 5.19; before, ``memory.current`` sampled at each
read), ``memory.events`` ``oom_kill`` for OOM detection, ``cpu.max`` with the same share and
period as v1 (left unlimited through init), ``cpu.weight`` 1 for pool refills (v1's shares 2),
``pids.max``, ``cgroup.freeze``/``cgroup.events``, ``cgroup.kill`` and ``cpu.stat``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from .cgroup_delegation import ROOT, delegate
from .cgroups import (
    CFS_PERIOD_US,
    PIDS_MAX,
    _write,
    cpu_quota_us,
    memory_limit_bytes,
    total_pids_max,
)
from .errors import SandboxUnavailable
from .procfiles import KeptFile

SUBTREE = "+cpu +memory +pids"
DEFAULT_WEIGHT, BACKGROUND_WEIGHT = 100, 1  # cpu.weight: the kernel's default and minimum


def _keyed(text: str, key: str) -> int:
    """The value of ``key`` in a flat-keyed cgroup file (memory.events, cpu.stat, ...)."""
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return int(v)
    return 0


class V2CgroupTree:
    """The factory's parent cgroup, a sibling of the server's leaf in its delegated subtree."""

    def __init__(self, name: str, root: Path = ROOT, base: Path | None = None) -> None:
        self.base = base if base is not None else delegate(root)
        self.parent = self.base / name

    def create(self) -> None:
        try:
            # SAFETY: a new directory in our own delegated cgroup; nothing else uses it.
            self.parent.mkdir(exist_ok=True)
            # SAFETY: limits and controllers of our own new parent, which holds only sandboxes.
            _write(self.parent / "pids.max", str(total_pids_max()))
            _write(self.parent / "cgroup.subtree_control", SUBTREE)
        except OSError as e:
            raise SandboxUnavailable(f"cannot create cgroup {self.parent}: {e}") from e

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.parent.rmdir()

    def child(self, sandbox_id: str) -> V2SandboxCgroup:
        return V2SandboxCgroup(self.parent / sandbox_id)


class V2SandboxCgroup:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.removed = False
        d = self._dir = str(path)
        self._procs = d + "/cgroup.procs"
        self._quota_us: int | None = None
        self._sampled_peak = 0
        self._peak = KeptFile(d + "/memory.peak", os.O_RDWR)  # writable (reset) from 6.12
        self._peak_ro = KeptFile(d + "/memory.peak", os.O_RDONLY)
        self._current = KeptFile(d + "/memory.current", os.O_RDONLY)
        self._events = KeptFile(d + "/memory.events", os.O_RDONLY)
        self._freeze_ctl = KeptFile(d + "/cgroup.freeze", os.O_WRONLY)
        self._freeze_state = KeptFile(d + "/cgroup.events", os.O_RDONLY)

    def create(self, *, background: bool = False) -> None:
        # SAFETY: a fresh cgroup for one sandbox, under the factory's parent.
        os.mkdir(self._dir)
        d = self._dir
        _write(d + "/pids.max", str(PIDS_MAX))
        _write(d + "/memory.oom.group", "1")
        with contextlib.suppress(OSError):  # absent without swap accounting
            _write(d + "/memory.swap.max", "0")
        if background:
            _write(d + "/cpu.weight", str(BACKGROUND_WEIGHT))
        _write(d + "/cpu.max", f"max {CFS_PERIOD_US}")

    def procs_files(self) -> list[str]:
        return [self._procs]

    def set_limits(self, memory_mb: int, tmp_in_memory_mb: int = 0) -> None:
        # SAFETY: the sandbox is idle (waiting for its spec), far below any limit we set.
        _write(self._dir + "/memory.max", str(memory_limit_bytes(memory_mb, tmp_in_memory_mb)))
        _write(self._dir + "/cpu.weight", str(DEFAULT_WEIGHT))
        # The quota stays unlimited through init: see limit_cpu.
        self._quota_us = cpu_quota_us(memory_mb)

    def limit_cpu(self) -> None:
        """Apply the memory-proportional CPU share (after init). Idempotent."""
        if self._quota_us is not None and not self.removed:
            with contextlib.suppress(OSError):
                # SAFETY: a cgroup of this sandbox only; lowering a quota cannot fail a task.
                _write(self._dir + "/cpu.max", f"{self._quota_us} {CFS_PERIOD_US}")

    def _raw_peak(self) -> int:
        raw = self._peak.read(64) or self._peak_ro.read(64)
        if raw:
            return int(raw)
        # No memory.peak (kernel < 5.19): the highest memory.current seen at our reads.
        current = self._current.read(64)
        if current:
            self._sampled_peak = max(self._sampled_peak, int(current))
        return self._sampled_peak

    def memory_peak(self, at_least: int = 0) -> int:
        """Peak charge minus tmpfs (shmem) pages, as on v1; memory.stat is read only when the
        raw peak exceeds ``at_least``."""
        peak = self._raw_peak()
        if peak <= at_least:
            return peak
        try:
            with open(self._dir + "/memory.stat") as f:
                shmem = _keyed(f.read(), "shmem")
        except OSError:
            shmem = 0
        return max(0, peak - shmem)

    def reset_memory_peak(self) -> None:
        # SAFETY: resets, for our own fd only, the peak of this sandbox's memory cgroup
        # (kernel >= 6.12; before, the write fails and the peak stays the environment's).
        self._peak.write(b"reset")
        self._sampled_peak = 0

    def oom_kills(self) -> int:
        return _keyed(self._events.read().decode(), "oom_kill")

    def cpu_time_ns(self) -> int:
        with open(self._dir + "/cpu.stat") as f:
            return _keyed(f.read(), "usage_usec") * 1000

    async def freeze(self, frozen: bool) -> None:
        self._freeze_ctl.put(b"1" if frozen else b"0")
        want = b"frozen 1" if frozen else b"frozen 0"
        for i in range(2000):
            if want in self._freeze_state.read(256).splitlines():
                return
            await asyncio.sleep(0 if i < 20 else 0.001)
        raise TimeoutError(f"cgroup did not reach {want.decode()!r}")

    def kill(self) -> None:
        """SIGKILL everything inside, frozen tasks included."""
        try:
            # SAFETY: this cgroup holds only this sandbox's processes.
            _write(self._dir + "/cgroup.kill", "1")
        except OSError:
            with contextlib.suppress(OSError):  # kernel < 5.14: one by one
                for pid in Path(self._procs).read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), 9)

    async def remove(self) -> None:
        """Remove the directory; retries while the kernel still lists exiting tasks."""
        if self.removed:
            return
        for kept in (
            self._peak,
            self._peak_ro,
            self._current,
            self._events,
            self._freeze_ctl,
            self._freeze_state,
        ):
            kept.close()
        for _ in range(500):
            try:
                os.rmdir(self._dir)
                break
            except FileNotFoundError:
                break
            except OSError:
                await asyncio.sleep(0.002)
        self.removed = True
