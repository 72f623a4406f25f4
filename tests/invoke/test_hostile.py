"""Hostile functions: every attempt fails safely, and other functions keep serving."""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import pytest

from support import Deploy, call

PROBE = r"""
import ctypes, errno, os, socket, subprocess, threading, time

libc = ctypes.CDLL(None, use_errno=True)

def _try(fn):
    try:
        r = fn()
        return {"ok": True, "value": r}
    except OSError as e:
        return {"ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno))}

def _sys(rc):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc

def read(path):
    with open(path, "rb") as f:
        return f.read(200).decode("latin-1")

def write(path):
    with open(path, "w") as f:
        f.write("x")

def fill_tmp():
    n = 0
    with open("/tmp/fill", "wb") as f:
        chunk = b"\0" * (1 << 20)
        while n < 2048:
            f.write(chunk)
            f.flush()
            n += 1
    return n

def fork_bomb():
    kids = []
    try:
        while len(kids) < 5000:
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            kids.append(pid)
    finally:
        for pid in kids:
            os.kill(pid, 9)
        for pid in kids:
            os.waitpid(pid, 0)
    return len(kids)

def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"

def connect(host, port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
    finally:
        s.close()

_ticks = []

def _spin():
    while True:
        _ticks.append(time.monotonic())
        x = 0
        for i in range(20000):
            x += i

def handler(event, context):
    op = event["op"]
    arg = event.get("arg")
    if op == "read":
        return _try(lambda: read(arg))
    if op == "listdir":
        return _try(lambda: os.listdir(arg))
    if op == "write":
        return _try(lambda: write(arg))
    if op == "fill_tmp":
        return _try(fill_tmp)
    if op == "fork_bomb":
        return _try(fork_bomb)
    if op == "mount":
        return _try(lambda: _sys(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None)))
    if op == "unshare":
        return _try(lambda: _sys(libc.unshare(0x10000000)))  # CLONE_NEWUSER
    if op == "setns":
        fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        return _try(lambda: _sys(libc.setns(fd, 0)))
    if op == "ptrace":
        return _try(lambda: _sys(libc.ptrace(16, 1, None, None)))  # PTRACE_ATTACH to pid 1
    if op == "raw_socket":
        return _try(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close())
    if op == "connect":
        return _try(lambda: connect(arg[0], arg[1]))
    if op == "kill":
        return _try(lambda: os.kill(arg, 0))
    if op == "pids":
        return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    if op == "spin_after_return":
        threading.Thread(target=_spin, daemon=True).start()
        return "spinning"
    if op == "ticks":
        time.sleep(0.3)  # let the spinner tick again after the thaw
        gaps = [b - a for a, b in zip(_ticks, _ticks[1:])]
        return {"max_gap": max(gaps) if gaps else 0, "count": len(_ticks)}
    if op == "busy_loop":
        while True:
            pass
    if op == "env":
        return dict(os.environ)
    if op == "orphans":  # background processes whose shell exits at once: orphans for PID 1
        loop = "i=0; while [ $i -lt 100 ]; do (/bin/true &); i=$((i+1)); done"
        for _ in range(arg):
            os.system(loop)
        time.sleep(0.2)
        return sum(_state(p) == "Z" for p in os.listdir("/proc") if p.isdigit())
    if op == "spawn":
        return [subprocess.run(["/bin/true"]).returncode for _ in range(arg)]
    return "unknown op"
"""


@pytest.fixture(scope="module")
def probe(server: Any) -> str:
    from support import lambda_client, make_zip, wait_active

    client = lambda_client(server.url)
    client.create_function(
        FunctionName="hostile-probe", Runtime="python3.11", Handler="app.handler",
        Role="arn:aws:iam::000000000000:role/r", Timeout=10, MemorySize=256,
        Code={"ZipFile": make_zip({"app.py": PROBE})},
    )  # fmt: skip
    wait_active(client, "hostile-probe")
    return "hostile-probe"


@pytest.fixture(scope="module")
def bystander(server: Any) -> str:
    from support import lambda_client, make_zip, wait_active

    client = lambda_client(server.url)
    client.create_function(
        FunctionName="hostile-bystander", Runtime="python3.11", Handler="app.handler",
        Role="arn:aws:iam::000000000000:role/r",
        Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 'still here'\n"})},
    )  # fmt: skip
    wait_active(client, "hostile-bystander")
    return "hostile-bystander"


def op(client: Any, name: str, what: str, arg: Any = None) -> Any:
    out, body = call(client, name, {"op": what, "arg": arg})
    assert "FunctionError" not in out, body
    return body


@pytest.fixture(autouse=True)
def _bystander_keeps_serving(client: Any, bystander: str) -> Any:
    yield
    assert call(client, bystander, {})[1] == "still here"


def test_host_files_are_invisible(client: Any, probe: str, server: Any) -> None:
    assert op(client, probe, "read", "/etc/shadow") == {"ok": False, "errno": "ENOENT"}
    assert op(client, probe, "listdir", str(server.data_dir))["ok"] is False
    trees = server.data_dir / "code" / "trees"
    other = next(trees.iterdir())
    assert op(client, probe, "listdir", str(other))["ok"] is False
    assert op(client, probe, "listdir", "/sys")["ok"] is False
    # /proc shows the sandbox's own processes only: the function's runtime (PID 1 is the
    # environment's init, not the function's to look at).
    assert op(client, probe, "pids") == [2]
    # /proc/1 is the sandbox's own PID 1, never the host's init.
    assert op(client, probe, "read", "/proc/1/environ")["ok"] is False
    assert op(client, probe, "read", f"/proc/{server.proc.pid}/environ")["ok"] is False


def test_code_and_layers_are_read_only(client: Any, probe: str) -> None:
    assert op(client, probe, "write", "/var/task/app.py") == {"ok": False, "errno": "EROFS"}
    assert op(client, probe, "write", "/var/task/new.py") == {"ok": False, "errno": "EROFS"}
    assert op(client, probe, "write", "/opt/x") == {"ok": False, "errno": "EROFS"}
    assert op(client, probe, "write", "/usr/x") == {"ok": False, "errno": "EROFS"}


def test_filling_tmp_hits_its_size(client: Any, probe: str) -> None:
    assert op(client, probe, "fill_tmp") == {"ok": False, "errno": "ENOSPC"}


def test_fork_bomb_is_contained(client: Any, probe: str) -> None:
    # pids.max (1024) stops it with EAGAIN, unless the copies' memory or the function's time
    # runs out first, in which case the environment is killed and reset; nothing escapes.
    out, body = call(client, probe, {"op": "fork_bomb"})
    if "FunctionError" in out:
        assert body["errorType"] in ("Runtime.OutOfMemory", "Sandbox.Timedout")
    else:
        assert body == {"ok": False, "errno": "EAGAIN"}
    assert op(client, probe, "pids") == [2]


def test_orphans_are_reaped(client: Any, probe: str) -> None:
    """PID 1 reaps the orphans of background processes: 2,000 of them leave no zombies, and
    the environment can still spawn (with the runtime as PID 1, fork failed after ~1,022)."""
    for _ in range(4):
        assert op(client, probe, "orphans", 5) == 0  # zombies left
    assert op(client, probe, "spawn", 5) == [0] * 5


@pytest.mark.parametrize(
    ("what", "expected"),
    [("mount", "EPERM"), ("unshare", "EPERM"), ("setns", "EPERM"), ("ptrace", "EPERM"),
     ("raw_socket", "EPERM")],
)  # fmt: skip
def test_privileged_calls_denied(client: Any, probe: str, what: str, expected: str) -> None:
    assert op(client, probe, what) == {"ok": False, "errno": expected}


def test_network_reaches_nothing(client: Any, probe: str, server: Any) -> None:
    assert op(client, probe, "connect", ["127.0.0.1", server.port])["errno"] == "ECONNREFUSED"
    assert op(client, probe, "connect", ["127.0.0.1", 5432])["errno"] == "ECONNREFUSED"
    assert op(client, probe, "connect", ["192.0.2.1", 80])["errno"] == "ENETUNREACH"


def test_host_pids_unreachable(client: Any, probe: str, server: Any) -> None:
    assert op(client, probe, "kill", server.proc.pid) == {"ok": False, "errno": "ESRCH"}
    assert op(client, probe, "kill", os.getpid()) == {"ok": False, "errno": "ESRCH"}


def test_no_server_secrets_in_environment(client: Any, probe: str, server: Any) -> None:
    env = op(client, probe, "env")
    secret = (server.data_dir / "server.key").read_bytes()
    joined = "\n".join(f"{k}={v}" for k, v in env.items())
    assert base64.b64encode(secret).decode() not in joined
    assert not any(k in env for k in ("HOME", "PYENV_ROOT", "VIRTUAL_ENV", "PYTEST_CURRENT_TEST"))
    assert not set(env) & {
        k for k in os.environ if not k.startswith(("AWS_", "LANG", "PATH", "TZ"))
    }


def test_cpu_after_return_is_frozen(client: Any, probe: str) -> None:
    assert op(client, probe, "spin_after_return") == "spinning"
    time.sleep(1.0)
    ticks = op(client, probe, "ticks")
    assert ticks["count"] > 0
    assert ticks["max_gap"] >= 0.8, ticks  # the spinner stood still while frozen


def test_busy_loop_times_out(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": "def handler(e, c):\n    while True:\n        pass\n"}, Timeout=1)
    out, body = call(client, name, {})
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
