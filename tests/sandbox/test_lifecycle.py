"""Limits, freezer, kill, pool, zygotes and runtimes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from brazier.sandbox import (
    LinuxSandboxFactory,
    RuntimeUnavailable,
    SandboxStartError,
    TmpVolume,
)

from .conftest import code_dir, init_dir_with, json_lines, needs_root, output, run, spec

pytestmark = [pytest.mark.sandbox, needs_root]


def test_fork_bomb_stopped_by_pids_max(tmp_path: Path) -> None:
    code = code_dir(
        tmp_path,
        """
        #!/usr/bin/python3
        import os, threading, time, json
        n = 0
        try:
            while n < 5000:
                threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
                n += 1
        except RuntimeError:
            pass
        forked = 0
        try:
            if os.fork() == 0:
                os._exit(0)
        except OSError as e:
            forked = e.errno
        print(json.dumps({"threads": n, "fork_errno": forked}), flush=True)
        os._exit(0)
        """,
    )

    async def go(f: LinuxSandboxFactory) -> dict[str, object]:
        sbx = await f.start(spec(code, memory_mb=1024))
        r = await json_lines(sbx)
        await sbx.kill()
        return r

    r = run(go, pool_size=0)
    assert 900 < r["threads"] < 1024, r["_raw"]  # type: ignore[operator]
    assert r["fork_errno"] == 11  # EAGAIN


def test_memory_bomb_is_oom_killed_and_reported(tmp_path: Path) -> None:
    code = code_dir(
        tmp_path,
        """
        #!/usr/bin/python3
        hog = []
        while True:
            hog.append(bytearray(8 << 20))
        """,
    )

    async def go(f: LinuxSandboxFactory) -> tuple[object, bool, int]:
        sbx = await f.start(spec(code, memory_mb=64, ephemeral_mb=8))
        status = await asyncio.wait_for(sbx.wait(), 20)
        oom, peak = sbx.oom_killed(), sbx.memory_peak_bytes()
        await sbx.kill()
        assert sbx.oom_killed()  # remembered after the cgroup is gone
        return status, oom, peak

    status, oom, peak = run(go, pool_size=0)
    assert status.signal == signal.SIGKILL  # type: ignore[attr-defined]
    assert oom
    assert 60 << 20 < peak <= 72 << 20


def test_freeze_stops_cpu_and_kill_removes_cgroups(tmp_path: Path) -> None:
    code = code_dir(tmp_path, "#!/bin/sh\nwhile :; do :; done\n")

    async def go(f: LinuxSandboxFactory) -> None:
        sbx = await f.start(spec(code, memory_mb=1769))
        await asyncio.sleep(0.1)
        await sbx.freeze()
        await sbx.freeze()  # idempotent
        before = sbx.cpu_time_ns()
        await asyncio.sleep(0.2)
        assert sbx.cpu_time_ns() == before
        await sbx.thaw()
        await asyncio.sleep(0.1)
        assert sbx.cpu_time_ns() > before + 20_000_000
        dirs = [*sbx.cgroup.dirs.values(), sbx.cgroup.v2]  # type: ignore[attr-defined]
        await sbx.freeze()
        await sbx.kill()  # works on a frozen sandbox
        await sbx.kill()  # idempotent
        assert (await sbx.wait()).signal == signal.SIGKILL
        assert not any(d is not None and d.exists() for d in dirs)
        assert not Path(f"/proc/{sbx.pid}").exists()  # noqa: ASYNC240
        with pytest.raises(OSError):
            sbx.listener.fileno() if sbx.listener.fileno() >= 0 else (_ for _ in ()).throw(OSError)

    run(go, pool_size=0)


def test_pooled_start_and_statistics(tmp_path: Path) -> None:
    code = code_dir(tmp_path, "#!/bin/sh\necho hi $1\n")

    async def go(f: LinuxSandboxFactory) -> None:
        first = await f.start(spec(code))
        for _ in range(50):
            if f.statistics().pooled == 2:
                break
            await asyncio.sleep(0.02)
        second = await f.start(spec(code))
        assert await output(second) == "hi\n"
        for s in (first, second):
            await s.kill()
        stats = f.statistics()
        assert stats.started == 2 and stats.started_from_pool == 1 and stats.running == 0
        assert stats.zygotes == 1

    run(go, pool_size=2)


def _shares(sbx: Any) -> int:
    return int((sbx.cgroup.dirs["cpu"] / "cpu.shares").read_text())


def test_pooled_environments_wait_at_the_lowest_cpu_weight(tmp_path: Path) -> None:
    """Refilling the pool must not slow the cold starts that take from it: a pooled environment
    builds its root at cpu.shares 2; started, it gets the default weight back."""
    code = code_dir(tmp_path, "#!/bin/sh\nsleep 5\n")

    async def go(f: LinuxSandboxFactory) -> tuple[list[int], int, int]:
        on_demand = await f.start(spec(code))  # the pool was empty: forked for this start
        for _ in range(100):
            if f.statistics().pooled == 2:
                break
            await asyncio.sleep(0.02)
        pooled = [_shares(s) for p in f._pools.values() for s in p]
        started = await f.start(spec(code))
        weights = pooled, _shares(on_demand), _shares(started)
        for s in (on_demand, started):
            await s.kill()
        return weights

    pooled, on_demand, started = run(go, pool_size=2)
    assert pooled == [2, 2]
    assert on_demand == started == 1024


def test_missing_bootstrap_is_invalid_entrypoint(tmp_path: Path) -> None:
    code = code_dir(tmp_path, "not executable", name="README")

    async def go(f: LinuxSandboxFactory) -> None:
        with pytest.raises(SandboxStartError) as e:
            await f.start(spec(code))
        assert e.value.code == "Runtime.InvalidEntrypoint"
        assert "/var/task/bootstrap" in e.value.message
        assert f.statistics().running == 0

    run(go, pool_size=0)


def test_unknown_interpreter_is_runtime_unavailable(tmp_path: Path) -> None:
    async def go(f: LinuxSandboxFactory) -> None:
        with pytest.raises(
            RuntimeUnavailable, match=r"python3\.14 .*no-pyenv/3\.14\.\*/bin/python3\.14"
        ):
            await f.start(spec(tmp_path, runtime="python3.14"))
        with pytest.raises(RuntimeUnavailable, match=r"nodejs18\.x"):
            await f.start(spec(tmp_path, runtime="nodejs18.x"))

    run(go, pool_size=0, python_roots=(tmp_path / "no-pyenv",))


def _host_mounts() -> int:
    return len(Path("/proc/self/mountinfo").read_text().splitlines())


def test_tmp_survives_a_reset_and_is_mounted_nowhere_on_the_host(tmp_path: Path) -> None:
    code = code_dir(
        tmp_path, "#!/bin/sh\ncat /tmp/keep 2>/dev/null; echo kept > /tmp/keep; df -k /tmp\n"
    )
    vol = TmpVolume(4)

    async def go(f: LinuxSandboxFactory) -> tuple[list[str], int, int]:
        outs, before = [], _host_mounts()
        for i in range(3):
            if i == 2:
                vol.close()  # the host's reference: the next sandbox gets a fresh /tmp
                vol.close()  # idempotent
            sbx = await f.start(spec(code, tmp=vol, ephemeral_mb=4))
            outs.append(await output(sbx))
            during = _host_mounts()
            await sbx.kill()
        return outs, before, during

    try:
        outs, before, during = run(go, pool_size=0)
    finally:
        vol.close()
    assert [o.startswith("kept\n") for o in outs] == [False, True, False]
    # Its size: EphemeralStorage available (df's Size also counts ext4's own metadata), less
    # the block of /tmp/keep.
    assert all(" 4092 " in o for o in outs), outs
    assert during == before  # no host mount per environment


FAKE_PY_RUNTIME = """
import json, os, socket, sys
def main(handler):
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
    s = socket.create_connection((host, int(port)))
    info = {"handler": handler, "path": sys.path[:3], "cwd": os.getcwd(), "uid": os.getuid(),
            "env": os.environ.get("FOO"), "pid": os.getpid(),
            "modules": "http.client" in sys.modules}
    s.sendall(json.dumps(info).encode()); s.close()
    print("runtime done", flush=True)
    sys.exit(3)
"""


@pytest.mark.parametrize("runtime", ["python3.11", "python3.9", "python3.13"])
def test_python_zygote_runs_python_runtime(tmp_path: Path, runtime: str) -> None:
    minor = runtime.removeprefix("python")
    if not list(Path("/root/.pyenv/versions").glob(f"{minor}.*")) and not shutil.which(runtime):
        pytest.skip(f"no {runtime} here")
    init = init_dir_with(tmp_path, "python_runtime.py", FAKE_PY_RUNTIME)
    code = code_dir(tmp_path, "def handler(e, c): return e\n", name="app.py")

    async def go(f: LinuxSandboxFactory) -> tuple[dict[str, object], str, object]:
        sbx = await f.start(spec(code, runtime=runtime, handler="app.handler", env={"FOO": "bar"}))
        loop = asyncio.get_running_loop()
        conn, _ = await asyncio.wait_for(loop.sock_accept(sbx.listener), 10)
        data = await asyncio.wait_for(loop.sock_recv(conn, 4096), 10)
        conn.close()
        out = await output(sbx)
        status = await sbx.wait()
        await sbx.kill()
        return json.loads(data), out, status

    info, out, status = run(go, pool_size=0, init_dir=init)
    assert info["handler"] == "app.handler" and info["env"] == "bar" and info["uid"] == 993
    assert info["path"] == [
        "/var/task",
        "/opt/python",
        f"/opt/python/lib/python{minor}/site-packages",
    ]
    assert info["cwd"] == "/var/task" and info["pid"] == 2 and info["modules"]  # PID 1: init
    assert out == "runtime done\n"
    assert status.exit_code == 3  # type: ignore[attr-defined]


def test_nodejs_execs_node_runtime(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    major = version.strip()[1:].split(".")[0]
    init = init_dir_with(tmp_path, "node_runtime.mjs", "console.log('node', process.getuid());\n")
    code = code_dir(tmp_path, "export const handler = async () => 1;\n", name="index.mjs")

    async def go(f: LinuxSandboxFactory) -> str:
        sbx = await f.start(spec(code, runtime=f"nodejs{major}.x", handler="index.handler"))
        out = await output(sbx)
        await sbx.kill()
        return out

    assert run(go, pool_size=0, init_dir=init) == "node 993\n"


def _pids_cgroup_of(pid: int) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "pids":
            return PIDS / path.lstrip("/")
    raise AssertionError(f"no pids cgroup for {pid}")


def _fill_pids_cgroup(cg: Path, pid: int) -> None:
    """Move ``pid`` alone into a new pids cgroup with no room for a child."""
    cg.mkdir()
    (cg / "pids.max").write_text("1")
    (cg / "cgroup.procs").write_text(str(pid))


def _put_back(pid: int, home: Path, cg: Path) -> None:
    (home / "cgroup.procs").write_text(str(pid))
    cg.rmdir()


PIDS = Path("/sys/fs/cgroup/pids")


def test_a_fork_the_zygote_cannot_make_fails_that_start_only(tmp_path: Path) -> None:
    """The zygote forks each environment's PID 1 itself: when that fork fails (here its pids
    cgroup is full), the start fails with the reason and the zygote keeps serving."""
    code = code_dir(tmp_path, "#!/bin/sh\necho ok\n")
    full = PIDS / f"brazier-test-full-{os.getpid()}"

    async def go(f: LinuxSandboxFactory) -> str:
        first = await f.start(spec(code))  # starts the zygote
        await output(first)
        await first.kill()
        (zyg,) = f._zygotes.values()
        home = _pids_cgroup_of(zyg.pid)
        _fill_pids_cgroup(full, zyg.pid)
        try:
            with pytest.raises(SandboxStartError, match="environment setup failed"):
                await f.start(spec(code))
        finally:
            _put_back(zyg.pid, home, full)
        again = await f.start(spec(code))
        return await output(again)

    assert run(go, pool_size=0) == "ok\n"
