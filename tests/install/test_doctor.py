"""``brazier doctor`` on this host, for real: every check runs against the kernel, the cgroups and
the limits the process actually has (lowered with prlimit, or dropped to an unprivileged user with
setpriv, in the child only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from brazier.doctor import open_files_minimum, open_files_needed

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the checks run as root here")
NOBODY = 65534
EXPECTED = {
    "root", "kernel", "namespaces", "user-namespaces", "seccomp", "cgroups", "loop-devices",
    "e2fsprogs", "open-files", "runtimes", "native-init", "native-trace-env",
}  # fmt: skip


def doctor(
    tmp_path: Path, *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "brazier", "doctor", *args],
        cwd=tmp_path,  # the default data dir (./.brazier) is looked at, never created
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def findings(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    report = json.loads(proc.stdout)
    assert set(report) == {"ok", "findings"}
    by_check = {f["check"]: f for f in report["findings"]}
    assert report["ok"] == all(f["level"] != "FAIL" for f in by_check.values())
    return by_check


def own_cgroup_dirs() -> list[Path]:
    """The directories of this process's own cgroups, in every hierarchy."""
    mounts: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _src, opts = right.split()[:3]
        if fstype == "cgroup2":
            mounts[""] = Path(left.split()[4])
        elif fstype == "cgroup":
            for opt in opts.split(","):
                mounts[opt] = Path(left.split()[4])
    dirs = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(",") if names else [""]:
            if name in mounts:
                dirs.append(mounts[name] / path.lstrip("/"))
    return dirs


@needs_root
def test_doctor_passes_here_as_root(tmp_path: Path) -> None:
    proc = doctor(tmp_path, "--output", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = findings(proc)
    assert set(found) >= EXPECTED
    failed = {k: v for k, v in found.items() if v["level"] == "FAIL"}
    assert not failed
    for check in ("root", "namespaces", "seccomp", "cgroups", "open-files"):
        assert found[check]["level"] == "OK", found[check]
    assert "python3.11" in found["runtimes"]["what"]
    assert not (tmp_path / ".brazier").exists()
    # The cgroup probe removed what it created (named as a factory's, in our own subtree).
    leftovers = [p for d in own_cgroup_dirs() for p in d.glob("brazier-*-doctor")]
    assert not leftovers


@needs_root
def test_table_output_gives_each_finding_and_the_verdict(tmp_path: Path) -> None:
    proc = doctor(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["OK", "root"]
    assert any(line.split()[:2] == ["OK", "cgroups"] for line in lines)
    assert lines[-1] == "brazier can run sandboxes here"


@needs_root
@pytest.mark.skipif(shutil.which("prlimit") is None, reason="util-linux prlimit")
def test_a_too_low_open_files_limit_fails_with_the_fix(tmp_path: Path) -> None:
    low = open_files_minimum() - 1
    proc = doctor(tmp_path, "--output", "json", prefix=("prlimit", f"--nofile={low}:{low}"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = findings(proc)["open-files"]
    assert found["level"] == "FAIL"
    assert f"({low})" in found["what"]
    assert f"ulimit -n {open_files_needed(1000)}" in found["fix"]
    assert "LimitNOFILE=" in found["fix"]


@needs_root
@pytest.mark.skipif(shutil.which("prlimit") is None, reason="util-linux prlimit")
def test_a_limit_below_the_account_concurrency_warns(tmp_path: Path) -> None:
    """Below what the default account concurrency needs (its environments, its connections),
    brazier runs with fewer environments: a WARN with the figure, and exit 0. A smaller
    --account-concurrency fits in the same limit."""
    limit = 6000
    assert open_files_needed(100) < limit < open_files_needed(1000)
    args = ("prlimit", f"--nofile={limit}:{limit}")
    proc = doctor(tmp_path, "--output", "json", prefix=args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = findings(proc)["open-files"]
    assert found["level"] == "WARN"
    assert "1000" in found["what"] and "raise it" in found["fix"]
    proc = doctor(tmp_path, "--output", "json", "--account-concurrency", "100", prefix=args)
    assert findings(proc)["open-files"]["level"] == "OK"


@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="util-linux setpriv")
def test_as_an_unprivileged_user_it_fails_and_says_to_run_as_root(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    drop = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
    proc = doctor(tmp_path, prefix=drop)
    if "No module named" in proc.stderr or "Permission denied" in proc.stderr.splitlines()[0:1]:
        pytest.skip(f"this interpreter is not usable by uid {NOBODY}: {proc.stderr[-200:]}")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    root = out.index(next(line for line in out if line.split()[:2] == ["FAIL", "root"]))
    assert f"uid {NOBODY}" in out[root]
    assert "fix: run brazier as root" in out[root + 1]
    assert "brazier cannot run sandboxes here" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    json_proc = doctor(tmp_path, "--output", "json", prefix=drop)
    found = findings(json_proc)
    assert json_proc.returncode == 1
    assert found["root"]["level"] == "FAIL"
    assert "contrib/brazier.service" in found["root"]["fix"]
