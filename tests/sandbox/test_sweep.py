"""What a killed server leaves behind (cgroups, state dirs) is swept by the next one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from brazier.sandbox import cgroups
from brazier.sandbox.factory import sweep_stale
from brazier.sandbox.rootfs import mount_root, unmount_root

pytestmark = pytest.mark.sandbox


def _dead_pid() -> int:
    pid = 4_000_000
    while cgroups.pid_alive(pid):
        pid -= 1
    return pid


@pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root")
def test_sweep_removes_only_dead_factories() -> None:
    v1, _ = cgroups._mounts()
    own = cgroups.own_cgroups()
    root = v1["pids"] / own.get("pids", "")
    dead = root / f"brazier-{_dead_pid()}-deadbeef"
    alive = root / f"brazier-{os.getpid()}-cafebabe"
    state = Path("/run") / f"brazier-{_dead_pid()}-deadbeef-xyz"
    try:
        (dead / "sandbox1").mkdir(parents=True)
        alive.mkdir()
        (state / "root").mkdir(parents=True)
        mount_root(state / "root")  # a killed factory's root tmpfs is unmounted, then removed
        sweep_stale()
        assert not dead.exists()
        assert alive.exists()
        assert not state.exists()
    finally:
        unmount_root(state / "root")
        for d in (dead / "sandbox1", dead, alive):
            if d.exists():
                d.rmdir()
