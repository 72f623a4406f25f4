"""The v2 cgroup file logic against a fake cgroup2 tree (brazier.testing.cgroupfs). The real
kernel test is tests/vm/ (make test-v2)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from brazier.sandbox.cgroup_delegation import DelegationError, delegate, own_cgroup
from brazier.sandbox.cgroups import CFS_PERIOD_US, cpu_quota_us, memory_limit_bytes
from brazier.sandbox.cgroups_v2 import V2CgroupTree, V2SandboxCgroup
from brazier.testing.cgroupfs import FakeCgroupFs


@pytest.fixture
def fs(tmp_path: Path) -> FakeCgroupFs:
    return FakeCgroupFs(tmp_path / "cgroup")


def test_own_cgroup_reads_the_unified_line(fs: FakeCgroupFs, tmp_path: Path) -> None:
    f = tmp_path / "cg"
    f.write_text("12:pids:/x\n1:name=systemd:/y\n0::/system.slice/brazier.service\n")
    assert own_cgroup(fs.root, str(f)) == fs.root / "system.slice/brazier.service"


def test_delegation_moves_into_a_leaf_then_enables_controllers(fs: FakeCgroupFs) -> None:
    svc = fs.cgroup("system.slice/brazier.service", procs=[os.getpid()])
    fs.cgroup("system.slice/brazier.service/brazier-server")  # as the kernel makes on mkdir
    base = delegate(fs.root, fs.proc_cgroup("system.slice/brazier.service"))
    assert base == svc
    assert (svc / "brazier-server/cgroup.procs").read_text() == str(os.getpid())
    assert (svc / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"


def test_delegation_is_idempotent_from_the_leaf(fs: FakeCgroupFs) -> None:
    svc = fs.cgroup("svc")
    fs.cgroup("svc/brazier-server", procs=[os.getpid()])
    (svc / "cgroup.subtree_control").write_text("cpu memory pids")
    assert delegate(fs.root, fs.proc_cgroup("svc/brazier-server")) == svc
    assert not (svc / "brazier-server/brazier-server").exists()


def test_not_delegated_is_one_line_naming_the_fix(fs: FakeCgroupFs) -> None:
    fs.cgroup("user.slice/session-1.scope", controllers=["cpu"])
    with pytest.raises(DelegationError) as e:
        delegate(fs.root, fs.proc_cgroup("user.slice/session-1.scope"))
    msg = str(e.value)
    assert "\n" not in msg
    assert "memory pids" in msg
    assert "systemd-run --scope -p Delegate=yes" in msg


def test_unwritable_cgroup_is_a_delegation_error(fs: FakeCgroupFs) -> None:
    svc = fs.cgroup("svc", without=["cgroup.subtree_control"])
    (svc / "cgroup.subtree_control").mkdir()  # any OSError on the write: EISDIR here
    fs.cgroup("svc/brazier-server")
    with pytest.raises(DelegationError, match=r"cannot use cgroup .*svc.*Delegate=yes"):
        delegate(fs.root, fs.proc_cgroup("svc"))


def test_tree_creates_its_parent_under_the_base(fs: FakeCgroupFs) -> None:
    base = fs.cgroup("svc")
    fs.cgroup("svc/brazier-1-ab")  # its files, as the kernel makes them on mkdir
    tree = V2CgroupTree("brazier-1-ab", base=base)
    tree.create()
    assert (base / "brazier-1-ab/cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (base / "brazier-1-ab").is_dir()
    assert tree.child("sbx-1").path == base / "brazier-1-ab/sbx-1"


def test_limits_accounting_and_freeze_files(fs: FakeCgroupFs) -> None:
    d = fs.cgroup("svc/brazier-1-ab/sbx-1")
    cg = V2SandboxCgroup(d)
    cg.set_limits(128, 512)
    assert (d / "memory.max").read_text() == str(memory_limit_bytes(128, 512))
    assert (d / "cpu.max").read_text() == "max 100000\n"  # unlimited through init
    cg.limit_cpu()
    # the fake does not truncate on write as cgroupfs does: compare the fields written
    assert (d / "cpu.max").read_text().split() == [str(cpu_quota_us(128)), str(CFS_PERIOD_US)]
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 2\n")
    assert cg.oom_kills() == 2
    (d / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\n")
    assert cg.cpu_time_ns() == 1_500_000
    (d / "memory.peak").write_text(f"{100 << 20}\n")
    (d / "memory.stat").write_text(f"anon 1\nshmem {30 << 20}\n")
    assert cg.memory_peak() == 70 << 20  # tmpfs pages are not function memory
    assert cg.memory_peak(at_least=200 << 20) == 100 << 20  # memory.stat not read
    (d / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    asyncio.run(cg.freeze(True))
    assert (d / "cgroup.freeze").read_text().startswith("1")
    cg.kill()
    assert (d / "cgroup.kill").read_text() == "1"


def test_peak_falls_back_to_sampled_memory_current(fs: FakeCgroupFs) -> None:
    d = fs.cgroup("svc/brazier-1-ab/sbx-2", without=["memory.peak"])
    cg = V2SandboxCgroup(d)
    for current, seen in ((10 << 20, 10 << 20), (50 << 20, 50 << 20), (20 << 20, 50 << 20)):
        (d / "memory.current").write_text(f"{current}\n")
        assert cg.memory_peak() == seen
    cg.reset_memory_peak()
    assert cg.memory_peak() == 20 << 20


def test_remove_deletes_the_directory(fs: FakeCgroupFs) -> None:
    d = fs.root / "empty-sbx"
    d.mkdir()
    cg = V2SandboxCgroup(d)
    asyncio.run(cg.remove())
    assert not d.exists() and cg.removed
