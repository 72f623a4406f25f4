"""Doctor findings this host cannot give for real: cgroup v2 (against a cgroupfs laid out in a
directory: this machine is v1 hybrid and its cgroups are not ours to remount; the VM suite runs
the real v2), no loop devices, no mkfs.ext4, a check that breaks."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from brazier import doctor
from brazier.doctor import Finding, Level, check_v2


def cgroup(tmp_path: Path, controllers: str, *, delegate: bool = False) -> Path:
    own = tmp_path / "sys.slice" / "brazier.service"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text(controllers + "\n")
    (own / "cgroup.subtree_control").write_text("")
    if delegate:
        try:
            os.setxattr(own, "user.delegate", b"1")
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EPERM):
                pytest.skip(f"no user xattrs on {tmp_path}: {exc}")
            raise
    return own


def one(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


def test_missing_controllers_fail_with_the_delegation_fix(tmp_path: Path) -> None:
    own = cgroup(tmp_path, "cpuset io")
    found = one(list(check_v2(own, systemd=tmp_path / "no-systemd")))
    assert found.level is Level.FAIL
    assert "memory, cpu, pids" in found.what
    assert "Delegate=yes" in found.fix and "contrib/brazier.service" in found.fix


def test_without_systemd_our_own_cgroup_is_ours(tmp_path: Path) -> None:
    own = cgroup(tmp_path, "cpuset cpu io memory pids")
    found = one(list(check_v2(own, systemd=tmp_path / "no-systemd")))
    assert found.level is Level.OK
    assert "delegated" in found.what


def test_under_systemd_without_delegation_warns_with_what_to_run(tmp_path: Path) -> None:
    own = cgroup(tmp_path, "cpu memory pids")
    (tmp_path / "systemd").mkdir()
    found = one(list(check_v2(own, systemd=tmp_path / "systemd")))
    assert found.level is Level.WARN
    assert "systemd-run --scope -p Delegate=yes brazier server" in found.fix


def test_under_systemd_a_delegated_cgroup_is_ok(tmp_path: Path) -> None:
    own = cgroup(tmp_path, "cpu memory pids", delegate=True)
    (tmp_path / "systemd").mkdir()
    assert one(list(check_v2(own, systemd=tmp_path / "systemd"))).level is Level.OK


def test_an_unreadable_cgroup_fails(tmp_path: Path) -> None:
    found = one(list(check_v2(tmp_path / "gone", systemd=tmp_path / "no-systemd")))
    assert found.level is Level.FAIL
    assert str(tmp_path / "gone") in found.what


# -- other findings a host can give, with what this one does not have ----------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="the loop check runs as root only")
def test_no_loop_devices_warn_that_tmp_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(doctor, "_LOOP_CONTROL", tmp_path / "loop-control")
    monkeypatch.setattr(doctor, "_SBIN", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    opts = doctor.DoctorOptions(data_dir=tmp_path, account_concurrency=1000)
    found = {f.check: f for f in doctor.check_tmp_disks(opts)}
    assert found["loop-devices"].level is Level.WARN
    assert "No such file" in found["loop-devices"].what and "tmpfs" in found["loop-devices"].what
    assert "modprobe loop" in found["loop-devices"].fix
    assert found["e2fsprogs"].level is Level.WARN
    assert "e2fsprogs" in found["e2fsprogs"].fix


def test_a_check_that_breaks_is_a_fail_finding_not_a_traceback(tmp_path: Path) -> None:
    def check_broken(opts: doctor.DoctorOptions) -> Iterator[Finding]:
        yield Finding("first", Level.OK, "fine")
        raise RuntimeError("boom")

    opts = doctor.DoctorOptions(data_dir=tmp_path, account_concurrency=1000)
    findings = doctor.run_checks(opts, (check_broken,))
    assert [(f.check, f.level) for f in findings] == [("first", Level.OK), ("broken", Level.FAIL)]
    assert "RuntimeError: boom" in findings[1].what
    assert not doctor.can_run_sandboxes(findings)
