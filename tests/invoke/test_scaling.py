"""Scaling out under concurrency, reuse of warm environments, throttling, reaping, logs CLI."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROLE
from support import (
    ROOT,
    Deploy,
    ServerProcess,
    call,
    lambda_client,
    make_zip,
    running_server,
    wait_active,
)

SLEEPY = (
    "import time\ndef handler(e, c):\n    time.sleep(e.get('s', 0))\n    return c.log_stream_name\n"
)


def _stream(out: dict[str, Any]) -> str:
    tail = base64.b64decode(out["LogResult"]).decode()
    return tail


def test_concurrent_requests_scale_out(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": SLEEPY})
    t0 = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: call(lambda_client(client.meta.endpoint_url), name,
                                                {"s": 1.0}), range(6)))  # fmt: skip
    elapsed = time.monotonic() - t0
    streams = {body for _, body in results}
    assert all("FunctionError" not in out for out, _ in results)
    assert len(streams) == 6  # one environment per concurrent invocation
    assert elapsed < 4.5


def test_sequential_invokes_reuse_the_warm_environment(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": SLEEPY})
    streams = {call(client, name, {})[1] for _ in range(10)}
    assert len(streams) == 1


def test_account_concurrency_limit_throttles(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", args=("--account-concurrency", "2")).start()
    try:
        client = lambda_client(srv.url)
        client.create_function(
            FunctionName="t", Runtime="python3.11", Handler="app.handler",
            Role="arn:aws:iam::000000000000:role/r", Code={"ZipFile": make_zip({"app.py": SLEEPY})},
        )  # fmt: skip
        wait_active(client, "t")

        def one(_: int) -> str:
            mine = lambda_client(srv.url)
            try:
                call(mine, "t", {"s": 1.5})
            except mine.exceptions.TooManyRequestsException as exc:
                err = exc.response
                return f"{err['Reason']}/{err['ResponseMetadata']['HTTPStatusCode']}"
            return "ok"

        with ThreadPoolExecutor(4) as pool:
            outcomes = sorted(pool.map(one, range(4)))
        assert outcomes == ["ConcurrentInvocationLimitExceeded/429"] * 2 + ["ok"] * 2
        assert client.get_account_settings()["AccountLimit"]["ConcurrentExecutions"] == 2
    finally:
        srv.stop()


def test_idle_environments_are_reaped(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", args=("--idle-ttl", "0.5")).start()
    try:
        client = lambda_client(srv.url)
        client.create_function(
            FunctionName="r", Runtime="python3.11", Handler="app.handler",
            Role="arn:aws:iam::000000000000:role/r", Code={"ZipFile": make_zip({"app.py": SLEEPY})},
        )  # fmt: skip
        wait_active(client, "r")
        first, _ = call(client, "r", {}, LogType="Tail")
        warm, _ = call(client, "r", {}, LogType="Tail")
        assert "Init Duration" in _stream(first)
        assert "Init Duration" not in _stream(warm)
        time.sleep(1.5)
        cold, _ = call(client, "r", {}, LogType="Tail")
        assert "Init Duration" in _stream(cold)
    finally:
        srv.stop()


def test_brazier_logs_and_invoke_cli(client: Any, deploy: Deploy, server: Any) -> None:
    name = deploy(
        {"app.py": "def handler(e, c):\n    print('cli says', e)\n    return {'got': e}\n"}
    )
    env = {"BRAZIER_ENDPOINT": server.url, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "brazier", "invoke", name, '{"hello": 1}', "--log"],
        capture_output=True, text=True, cwd=ROOT, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '{"got": {"hello": 1}}'
    assert "cli says {'hello': 1}" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "brazier", "invoke", name, "-"], input='{"x": 2}',
        capture_output=True, text=True, cwd=ROOT, env=env, check=False,
    )  # fmt: skip
    assert out.stdout.strip() == '{"got": {"x": 2}}'
    out = subprocess.run(
        [sys.executable, "-m", "brazier", "logs", name],
        capture_output=True, text=True, cwd=ROOT, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("START RequestId: ") == 2
    assert out.stdout.count("END RequestId: ") == 2
    assert len(re.findall(r"^REPORT RequestId: .*Duration", out.stdout, re.M)) == 2
    assert "INIT_START Runtime Version" in out.stdout
    assert "cli says {'x': 2}" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "brazier", "invoke", "no-such-fn"],
        capture_output=True, text=True, cwd=ROOT, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "ResourceNotFoundException" in out.stderr


@pytest.mark.parametrize("n", [1])
def test_many_functions_one_server(client: Any, deploy: Deploy, n: int) -> None:
    names = [deploy({"app.py": f"def handler(e, c):\n    return {i}\n"}) for i in range(8)]
    assert [call(client, name, {})[1] for name in names] == list(range(8))


def _sandboxes_limited_to(server_pid: int, limit_mb: int) -> set[Path]:
    """The memory cgroups of this server's sandboxes whose limit is ``limit_mb``
    (MemorySize, see sandbox/cgroups.py)."""
    found = set()
    for cg in Path("/sys/fs/cgroup/memory").glob(f"**/brazier-{server_pid}-*/sbx-*"):
        with contextlib.suppress(OSError):
            if int((cg / "memory.limit_in_bytes").read_text()) == limit_mb << 20:
                found.add(cg)
    return found


def test_deleting_a_function_stops_its_environments(
    client: Any, deploy: Deploy, server: Any
) -> None:
    name = deploy(
        {"app.py": "def handler(e, c):\n    return 1\n"},
        MemorySize=203, EphemeralStorage={"Size": 517},  # a memory limit no other sandbox has
    )  # fmt: skip
    call(client, name, {})
    mine = _sandboxes_limited_to(server.proc.pid, 203)
    assert len(mine) == 1  # this function's one environment
    client.delete_function(FunctionName=name)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(p.exists() for p in mine):
        time.sleep(0.05)
    assert not any(p.exists() for p in mine)  # closed at once, not after the idle TTL


def _open_files_soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open files limit")


def _fd_table_size(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("FDSize:"):
            return int(line.split()[1])
    raise AssertionError("no FDSize")


def test_a_low_open_files_limit_does_not_cap_the_environments(tmp_path: Path) -> None:
    """Each environment holds ~11 descriptors in the server: started with a soft limit of 256
    (the usual default is 1,024), the server raises it and runs 30 environments."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    srv = ServerProcess(tmp_path / "data", open_files=(256, hard)).start()
    try:
        assert srv.proc is not None
        soft = _open_files_soft_limit(srv.proc.pid)
        assert soft > 256
        # Its descriptor table is already that large (see _presize_fd_table): growing it later,
        # with threads, would stall the event loop for an RCU grace period each time.
        assert _fd_table_size(srv.proc.pid) >= min(soft, 1000 * 12 + 256)
        client = lambda_client(srv.url)
        code = make_zip({"app.py": "def handler(e, c):\n    return 1\n"})
        names = [f"fd-{i}" for i in range(30)]
        for name in names:
            client.create_function(
                FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                Code={"ZipFile": code},
            )  # fmt: skip
        for name in names:
            wait_active(client, name)
            assert call(client, name, {})[1] == 1  # each keeps its environment
        assert len(list(Path(f"/proc/{srv.proc.pid}/fd").iterdir())) > 256
    finally:
        srv.stop()


def test_a_hard_open_files_limit_too_low_for_the_account_concurrency_is_reported(
    tmp_path: Path,
) -> None:
    # A hard limit cannot be raised again: only the server's process gets this one.
    srv = ServerProcess(tmp_path / "data", open_files=(256, 2048)).start()
    try:
        assert srv.proc is not None
        assert _open_files_soft_limit(srv.proc.pid) == 2048  # raised to the hard limit
        assert _fd_table_size(srv.proc.pid) >= 2048
    finally:
        srv.stop()
    text = srv.log.read_text()
    assert "the open files limit (2048) allows about 128 environments, fewer than the" in text
    assert "account concurrency (1000)" in text


def test_a_killed_zygote_is_replaced_and_its_environments_start_afresh(tmp_path: Path) -> None:
    """A zygote that dies (killed, out of memory) costs its environments a cold start, not an
    error: a warm function re-initialises in a new sandbox, a new one starts from a new zygote."""
    with running_server(tmp_path / "data", prewarm="python3.11") as srv:
        client = lambda_client(srv.url)
        code = make_zip({"app.py": "import os\ndef handler(e, c):\n    return os.getpid()\n"})
        for name in ("warm", "new"):
            client.create_function(
                FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                Code={"ZipFile": code},
            )  # fmt: skip
            wait_active(client, name)
        assert call(client, "warm", {})[1] == 2  # PID 1 is its sandbox's init
        assert srv.proc is not None
        zygotes = subprocess.run(
            ["pgrep", "-P", str(srv.proc.pid), "-f", "zygote.py"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert len(zygotes) == 1
        os.kill(int(zygotes[0]), signal.SIGKILL)
        time.sleep(0.3)
        out, _ = call(client, "new", {}, LogType="Tail")
        assert "FunctionError" not in out
        out, value = call(client, "warm", {}, LogType="Tail")
        assert "FunctionError" not in out and value == 2
        assert "Init Duration" in base64.b64decode(out["LogResult"]).decode()  # started afresh
