"""Brazier on a unified cgroup v2 host, through a real server driven by boto3 (in the VM of
scripts/vm-test.sh; skipped elsewhere, see conftest.py)."""

from __future__ import annotations

import base64
import errno
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import httpx

from brazier.sandbox.cgroups import PIDS_MAX, cpu_quota_us, memory_limit_bytes

from support import ROOT, ServerProcess, call, free_port, lambda_client, make_zip, wait_active

ROLE = "arn:aws:iam::000000000000:role/lambda-role"
CG = Path("/sys/fs/cgroup")


def deploy(client: Any, name: str, files: dict[str, str], **kw: Any) -> str:
    kw.setdefault("Runtime", "python3.11")
    kw.setdefault("Handler", "app.handler")
    kw.setdefault("Timeout", 60)  # an emulated CPU: a cold start takes seconds
    modes = {"bootstrap": 0o755} if "bootstrap" in files else None
    client.create_function(
        FunctionName=name, Role=ROLE, Code={"ZipFile": make_zip(files, modes=modes)}, **kw
    )
    wait_active(client, name, timeout=60)
    return name


def server_base(server: ServerProcess) -> Path:
    """The server's delegated cgroup: the parent of its leaf."""
    assert server.proc is not None
    line = Path(f"/proc/{server.proc.pid}/cgroup").read_text().strip()
    assert line.startswith("0::"), line
    own = CG / line[3:].lstrip("/")
    assert own.name == "brazier-server", own
    return own.parent


def sandboxes(server: ServerProcess) -> list[Path]:
    return sorted(server_base(server).glob("brazier-*/sbx-*"))


def sandbox_with_limit(server: ServerProcess, limit: int) -> Path:
    found = [d for d in sandboxes(server) if (d / "memory.max").read_text().strip() == str(limit)]
    assert len(found) == 1, [str(d) for d in sandboxes(server)]
    return found[0]


def test_server_lives_in_a_leaf_and_delegates_controllers(server: ServerProcess) -> None:
    base = server_base(server)
    enabled = set((base / "cgroup.subtree_control").read_text().split())
    assert {"cpu", "memory", "pids"} <= enabled
    assert (base / "brazier-server" / "cgroup.procs").read_text().split()  # no internal procs
    assert not (base / "cgroup.procs").read_text().split()
    log = server.log.read_text()
    assert "Traceback" not in log


PY_APP = "import sys\ndef handler(e, c):\n    return {'py': sys.version.split()[0], 'got': e}\n"
NODE_APP = (
    "export const handler = async (event) => ({ node: process.versions.node, got: event });\n"
)
CURL_BOOTSTRAP = """#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  H=$(mktemp)
  EVENT=$(curl -sS -D "$H" "$API/invocation/next")
  ID=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$H" | tr -d '\\r' | cut -d' ' -f2)
  curl -sS -X POST "$API/invocation/$ID/response" -d "{\\"echo\\":$EVENT}" >/dev/null
done
"""


def test_python_node_and_provided_functions(client: Any, server: ServerProcess) -> None:
    py = deploy(client, "v2-py", {"app.py": PY_APP})
    out, body = call(client, py, {"k": 1})
    assert "FunctionError" not in out, body
    assert body["got"] == {"k": 1} and body["py"].startswith("3.11")

    # 512 MB: under emulation node needs more than 128 MB's CPU share (7 %) to start in time,
    # and its binary, read over 9p, is charged to the function's memory.max.
    node = deploy(client, "v2-node", {"index.mjs": NODE_APP}, Runtime="nodejs20.x",
                  MemorySize=512, Handler="index.handler")  # fmt: skip
    out, body = call(client, node, {"k": 2})
    assert "FunctionError" not in out, body
    assert body["got"] == {"k": 2} and body["node"].startswith("20.")

    prov = deploy(client, "v2-provided", {"bootstrap": CURL_BOOTSTRAP},
                  Runtime="provided.al2023", Handler="x")  # fmt: skip
    out, body = call(client, prov, {"k": 3})
    assert "FunctionError" not in out, body
    assert body == {"echo": {"k": 3}}


def test_limits_are_written_to_the_v2_files(client: Any, server: ServerProcess) -> None:
    app = "def handler(e, c):\n    keep = bytearray(e['mb'] << 20)\n    return len(keep)\n"
    name = deploy(client, "v2-limits", {"app.py": app}, MemorySize=130, Timeout=60)
    out, body = call(client, name, {"mb": 60}, LogType="Tail")
    assert "FunctionError" not in out, body
    tail = base64.b64decode(out["LogResult"]).decode()
    used = int(re.search(r"Max Memory Used: (\d+) MB", tail).group(1))  # type: ignore[union-attr]
    # memory.peak (or sampled memory.current), page cache included, as on v1
    assert 60 <= used <= memory_limit_bytes(130) >> 20, tail
    d = sandbox_with_limit(server, memory_limit_bytes(130))
    assert (d / "memory.swap.max").read_text().strip() == "0"
    assert (d / "memory.oom.group").read_text().strip() == "1"
    assert (d / "pids.max").read_text().strip() == str(PIDS_MAX)
    assert (d / "cpu.max").read_text().split() == [str(cpu_quota_us(130)), "20000"]
    assert {"cpu", "memory", "pids"} <= set((d / "cgroup.controllers").read_text().split())


def test_out_of_memory_is_runtime_out_of_memory(client: Any, server: ServerProcess) -> None:
    app = (
        "def handler(e, c):\n"
        "    keep = [bytearray(32 << 20) for _ in range(64)]\n"
        "    return len(keep)\n"
    )
    name = deploy(client, "v2-oom", {"app.py": app}, MemorySize=128, Timeout=300)
    # Faulting in hundreds of MB page by page is slow under TCG: a client that waits for it.
    slow = boto3.client(
        "lambda", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="x",
        aws_secret_access_key="x",
        config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=360),
    )  # fmt: skip
    out, body = call(slow, name, {})
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory", body
    out, body = call(client, deploy(client, "v2-after-oom", {"app.py": PY_APP}), {"k": 0})
    assert "FunctionError" not in out, body


def test_timeout(client: Any) -> None:
    app = "import time\ndef handler(e, c):\n    time.sleep(10)\n"
    name = deploy(client, "v2-timeout", {"app.py": app}, Timeout=1)
    out, body = call(client, name, {})
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"


TICKER = """
import threading, time
ticks = 0
def _tick():
    global ticks
    while True:
        time.sleep(0.01)
        ticks += 1
threading.Thread(target=_tick, daemon=True).start()
def handler(e, c):
    return ticks
"""


def test_frozen_between_invokes(client: Any, server: ServerProcess) -> None:
    name = deploy(client, "v2-freeze", {"app.py": TICKER}, MemorySize=131)
    out, first = call(client, name, {})
    assert "FunctionError" not in out, first
    events = sandbox_with_limit(server, memory_limit_bytes(131)) / "cgroup.events"
    deadline = time.monotonic() + 10
    while "frozen 1" not in events.read_text().splitlines():
        assert time.monotonic() < deadline, events.read_text()
        time.sleep(0.05)
    time.sleep(2)  # ~200 ticks if it ran
    _, second = call(client, name, {})
    assert second - first < 100, (first, second)


FORK_BOMB = """
import errno, os, signal
def handler(e, c):
    n = 0
    while n < 4 * e['cap']:
        try:
            pid = os.fork()
        except OSError as ex:
            return {'forked': n, 'errno': ex.errno}
        if pid == 0:
            signal.pause()
            os._exit(0)
        n += 1
    return {'forked': n, 'errno': 0}
"""


def test_fork_bomb_is_contained_by_pids_max(client: Any, server: ServerProcess) -> None:
    name = deploy(client, "v2-forkbomb", {"app.py": FORK_BOMB}, MemorySize=1024, Timeout=120)
    out, body = call(client, name, {"cap": PIDS_MAX})
    assert "FunctionError" not in out, body
    assert body["errno"] == errno.EAGAIN
    assert PIDS_MAX // 2 < body["forked"] < PIDS_MAX
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200
    out, body = call(client, deploy(client, "v2-after-bomb", {"app.py": PY_APP}), {"k": 9})
    assert "FunctionError" not in out, body


def test_twenty_concurrent_environments(server: ServerProcess) -> None:
    app = (
        "import os, time, uuid\n"
        "ENV = str(uuid.uuid4())\n"
        "def handler(e, c):\n"
        "    time.sleep(e['sleep'])\n"
        "    return ENV\n"
    )
    name = deploy(lambda_client(server.url), "v2-twenty", {"app.py": app}, Timeout=120)
    results: list[Any] = []
    errors: list[BaseException] = []
    clients = [lambda_client(server.url) for _ in range(20)]  # made first: slow under TCG

    def one(client: Any) -> None:
        try:
            out, body = call(client, name, {"sleep": 20})  # long enough for all to overlap
            results.append(body if "FunctionError" not in out else out)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=one, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    assert len(results) == 20
    assert len(set(results)) == 20, results  # each call in its own environment


def test_undelegated_server_exits_with_one_line_naming_the_fix(
    server: ServerProcess, tmp_path: Path
) -> None:
    """A cgroup without the controllers (nothing delegated to it): one clear line, exit 1."""
    outer = server_base(server) / "undelegated"
    inner = outer / "svc"
    inner.mkdir(parents=True)  # outer enables nothing for its children: inner has no controllers
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "brazier", "server", "--port", str(free_port()),
             "--data-dir", str(tmp_path / "data")],
            check=False, capture_output=True, text=True, timeout=300, cwd=ROOT,
            preexec_fn=lambda: (inner / "cgroup.procs").write_text(str(os.getpid())),
        )  # fmt: skip
    finally:
        for d in (inner, outer):
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("brazier:")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("brazier: cgroup ") and "lacks the controllers" in errors[0]
    assert "systemd-run --scope -p Delegate=yes" in errors[0]


def test_sweep_removes_a_killed_servers_cgroups(server: ServerProcess) -> None:
    """A dead factory's cgroups (a process still inside one sandbox) go; a live one's stay."""
    from brazier.sandbox.cgroups import pid_alive
    from brazier.sandbox.factory import sweep_stale

    dead_pid = 4_000_000
    while pid_alive(dead_pid):
        dead_pid -= 1
    base = server_base(server)
    dead = base / f"brazier-{dead_pid}-deadbeef"
    alive = base / f"brazier-{os.getpid()}-cafebabe"
    (dead / "sbx-1").mkdir(parents=True)
    alive.mkdir()
    orphan = subprocess.Popen(
        ["sleep", "300"],
        preexec_fn=lambda: (dead / "sbx-1" / "cgroup.procs").write_text("0"),  # noqa: PLW1509
    )
    try:
        sweep_stale()
        assert orphan.wait(10) == -9  # killed by the sweep
        assert not dead.exists()
        assert alive.exists()
    finally:
        orphan.kill()
        orphan.wait()
        for d in (dead / "sbx-1", dead, alive):
            if d.exists():
                d.rmdir()
