"""Disk-backed /tmp (sandbox/tmpdisk.py, decision 0022): the pool of ready ext4 filesystems, what
a sandbox sees, and what a killed server leaves (nothing)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from brazier.sandbox import LinuxSandboxFactory, TmpVolume
from brazier.sandbox.tmpdisk import TmpDisks, loops_backed_by, usable_bytes

from .conftest import code_dir, json_lines, needs_root, run, spec

pytestmark = [pytest.mark.sandbox, needs_root]
MIB = 1 << 20


def _disk_dir(tmp_path: Path) -> Path:
    d = tmp_path / "disks"
    d.mkdir()
    return d


def _root_of(mount_fd: int) -> tuple[int, list[str]]:
    d = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=mount_fd)
    try:
        return stat.S_IMODE(os.fstat(d).st_mode), os.listdir(d)
    finally:
        os.close(d)


async def _until(cond: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_pool_fills_and_hands_out_disks_of_the_exact_size(tmp_path: Path) -> None:
    where = _disk_dir(tmp_path)

    async def go() -> None:
        disks = TmpDisks(where, per_size=3, sizes=(64,))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(disks.run())
            await _until(lambda: disks.pooled(64) == 3)
            assert len(loops_backed_by(where)) == 3  # the template is attached only to measure
            t0 = time.perf_counter()
            fd = await disks.take(64)
            assert time.perf_counter() - t0 < 0.005  # from the pool: no work
            assert usable_bytes(fd) == 64 * MIB
            assert _root_of(fd) == (0o1777, [])  # like Lambda's /tmp: empty, everyone's
            await _until(lambda: disks.pooled(64) == 3)  # refilled
            # A size never asked for is made on demand, then pooled too.
            other = await disks.take(100)
            assert usable_bytes(other) == 100 * MIB
            await _until(lambda: disks.pooled(100) == 2)  # fewer for a size not in ``sizes``
            assert len(disks.fill_times) >= 6
            assert len(loops_backed_by(where)) == 7
            os.close(fd)
            os.close(other)
            await asyncio.to_thread(disks.close)
        await _until(lambda: not loops_backed_by(where), within=10)

    asyncio.run(go())


KILLED = """
import asyncio, os, sys
from pathlib import Path
from brazier.sandbox.tmpdisk import TmpDisks

async def main():
    disks = TmpDisks(Path(sys.argv[1]), per_size=2, sizes=(32,))
    task = asyncio.create_task(disks.run())
    kept = await disks.take(32)
    while disks.pooled(32) < 2:
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    os.kill(os.getpid(), 9)

asyncio.run(main())
"""


def test_a_killed_owner_leaves_no_loop_device_and_no_file(tmp_path: Path) -> None:
    where = _disk_dir(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", KILLED, str(where)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout == "ready\n"
    deadline = time.monotonic() + 10
    while loops_backed_by(where) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loops_backed_by(where) == []  # autoclear: gone with the last reference
    assert list(where.iterdir()) == []  # the images never had a name


TMP_PROBE = """
#!/bin/sh
f=$(mktemp /tmp/fill-XXXXXX)
err=$(dd if=/dev/zero of=$f bs=1M count=100 2>&1); rc=$?
enospc=$(echo "$err" | grep -c 'No space left')
used=$(du -k $f | cut -f1)
type=$(grep ' /tmp ' /proc/self/mountinfo | sed 's/.* - \\([a-z0-9]*\\) .*/\\1/')
echo "{\\"rc\\": $rc, \\"enospc\\": $enospc, \\"kib\\": $used, \\"type\\": \\"$type\\",\\
 \\"files\\": $(ls /tmp | grep -c fill)}"
"""


def _memory_limit(sbx: object) -> int:
    cg = sbx.cgroup  # type: ignore[attr-defined]
    return int((cg.dirs["memory"] / "memory.limit_in_bytes").read_text())


def test_a_sandbox_fills_its_disk_to_enospc_under_a_smaller_memory_limit(tmp_path: Path) -> None:
    """64 MiB of /tmp for a 32 MiB sandbox: written to the last block, then ENOSPC; no OOM,
    and the limit is the memory size alone. The files survive a reset (a new sandbox)."""
    code = code_dir(tmp_path, TMP_PROBE)
    vol = TmpVolume(64)

    async def go(f: LinuxSandboxFactory) -> list[dict[str, object]]:
        assert f.tmp_disks is not None
        seen = []
        for _ in range(2):
            sbx = await f.start(spec(code, memory_mb=32, ephemeral_mb=64, tmp=vol))
            assert _memory_limit(sbx) == 32 * MIB
            seen.append(await json_lines(sbx))
            await sbx.wait()
            assert not sbx.oom_killed()
            await sbx.kill()
        await vol.aclose()
        return seen

    first, second = run(go, pool_size=0, tmp_disk_dir=_disk_dir(tmp_path))
    assert first["type"] == "ext4", first
    assert first["rc"] == 1 and first["enospc"] == 1, first
    assert second["files"] == 2  # the first sandbox's file is still there
    assert second["rc"] == 1 and second["enospc"] == 1
    # ext4 reserves blocks for delayed allocation pessimistically, so the first write may stop
    # a little early; what both wrote never exceeds the size.
    kib = [int(str(first["kib"])), int(str(second["kib"]))]
    assert kib[0] >= 62 * 1024
    assert sum(kib) <= 64 * 1024


def test_without_loop_devices_tmp_is_a_tmpfs_counted_as_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code = code_dir(tmp_path, TMP_PROBE)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")  # anonymous images cannot be made "in" a file: no disks

    async def go(f: LinuxSandboxFactory) -> tuple[int, dict[str, object]]:
        assert f.tmp_disks is None
        vol = TmpVolume(64)
        sbx = await f.start(spec(code, memory_mb=128, ephemeral_mb=64, tmp=vol))
        limit = _memory_limit(sbx)
        out = await json_lines(sbx)
        await sbx.kill()
        await vol.aclose()
        return limit, out

    with caplog.at_level(logging.WARNING, logger="brazier.sandbox.factory"):
        limit, out = run(go, pool_size=0, tmp_disk_dir=not_a_dir / "disks")
    assert limit == (128 + 64) * MIB  # the old semantics, documented in decision 0022
    assert out["type"] == "tmpfs" and out["enospc"] == 1
    warnings = [r for r in caplog.records if "falls back to tmpfs" in r.getMessage()]
    assert len(warnings) == 1


def test_probe_names_what_is_missing(tmp_path: Path) -> None:
    assert TmpDisks.probe(_disk_dir(tmp_path)) is None
    (tmp_path / "file").write_text("")
    why = TmpDisks.probe(tmp_path / "file" / "x")
    assert why is not None and "cannot make anonymous files" in why


def test_kill_minus_nine_of_a_server_is_swept(tmp_path: Path) -> None:
    """A server killed with -9 while its environments hold disks: once the next one swept the
    dead sandboxes, no loop device of the data dir is left."""
    from support import ServerProcess, lambda_client, make_zip, wait_active

    data = tmp_path / "data"
    srv = ServerProcess(data).start()
    try:
        client = lambda_client(srv.url)
        client.create_function(
            FunctionName="f", Runtime="python3.11", Role="arn:aws:iam::000000000000:role/r",
            Handler="app.handler", Code={"ZipFile": make_zip({"app.py": textwrap.dedent("""
                def handler(e, c):
                    open("/tmp/x", "w").write("x" * 100000)
                    return 1
            """)})},
        )  # fmt: skip
        wait_active(client, "f")
        assert client.invoke(FunctionName="f")["StatusCode"] == 200
        assert loops_backed_by(data)
    finally:
        srv.kill9()
    # The next server (another data dir) sweeps the dead one's sandboxes, if any survived it;
    # with them gone, the last references to the disks are, and autoclear frees the devices.
    srv2 = ServerProcess(tmp_path / "data2").start()
    try:
        deadline = time.monotonic() + 10
        while loops_backed_by(data) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert loops_backed_by(data) == []
        while not loops_backed_by(tmp_path / "data2") and time.monotonic() < deadline + 20:
            time.sleep(0.1)
        assert loops_backed_by(tmp_path / "data2")  # its own pool
    finally:
        srv2.stop()
    deadline = time.monotonic() + 10
    while loops_backed_by(tmp_path / "data2") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert loops_backed_by(tmp_path / "data2") == []  # a clean stop releases the pool too


def test_no_disk_when_the_host_lacks_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk needs its size (+ HOST_RESERVE) free on the data dir's filesystem: else the start
    fails with Sandbox.Failure naming it, rather than over-committing the host's disk."""
    from brazier.sandbox import SandboxStartError, tmpdisk

    code = code_dir(tmp_path, TMP_PROBE)
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    monkeypatch.setattr(tmpdisk, "HOST_RESERVE", free)  # more than is free, whatever the host

    async def go(f: LinuxSandboxFactory) -> SandboxStartError:
        vol = TmpVolume(64)
        try:
            with pytest.raises(SandboxStartError) as failed:
                await f.start(spec(code, memory_mb=128, ephemeral_mb=64, tmp=vol))
        finally:
            await vol.aclose()
        return failed.value

    error = run(go, pool_size=0, tmp_disk_dir=_disk_dir(tmp_path), tmp_disks_per_size=0)
    assert error.code == "Sandbox.Failure"
    assert "cannot prepare /tmp" in error.message and "free" in error.message
