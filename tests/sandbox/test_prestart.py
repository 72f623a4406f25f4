"""Pre-started node environments: node waits in the pool, the function arrives later."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from brazier.sandbox import LinuxSandboxFactory, SandboxSpec, TmpVolume
from brazier.sandbox.factory import PRESTART_ENV, prestart_fits
from brazier.sandbox.linux import LinuxSandbox

from .conftest import needs_root, run

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
]

PROBE = """
const fs = require('node:fs');
const status = fs.readFileSync('/proc/self/status', 'utf8');
const field = (k) => status.split('\\n').find((l) => l.startsWith(k + ':')).split(/\\s+/)[1];
let writable = true;
try { fs.writeFileSync('/var/task/x', 'x'); } catch (e) { writable = e.code; }
exports.handler = async (event) => ({
  event,
  uid: process.getuid(),
  capEff: field('CapEff'),
  seccomp: field('Seccomp'),
  taskWritable: writable,
  cwd: process.cwd(),
  env: { FOO: process.env.FOO, fn: process.env.AWS_LAMBDA_FUNCTION_NAME,
         wait: process.env._BRAZIER_WAIT_FD ?? null },
  layer: require('fromlayer').value,
  tmp: (fs.writeFileSync('/tmp/t', 'ok'), fs.readFileSync('/tmp/t', 'utf8')),
});
"""


def node_env(**extra: str) -> dict[str, str]:
    env = dict(PRESTART_ENV)
    env.update(
        _HANDLER="index.handler",
        LAMBDA_TASK_ROOT="/var/task",
        LAMBDA_RUNTIME_DIR="/var/runtime",
        AWS_LAMBDA_FUNCTION_NAME="probe",
        NODE_PATH="/opt/nodejs/node_modules:/var/runtime/node_modules",
        FOO="bar",
    )
    env.update(extra)
    return env


def make_dirs(tmp_path: Path, handler: str = PROBE) -> tuple[Path, Path]:
    os.chmod(tmp_path, 0o755)
    task, opt = tmp_path / "task", tmp_path / "opt"
    (opt / "nodejs" / "node_modules" / "fromlayer").mkdir(parents=True)
    (opt / "nodejs" / "node_modules" / "fromlayer" / "index.js").write_text(
        "exports.value = 'layer';\n"
    )
    task.mkdir()
    (task / "index.js").write_text(textwrap.dedent(handler))
    for d in (task, opt, *opt.rglob("*")):
        if d.is_dir():
            os.chmod(d, 0o755)
    return task, opt


async def serve_one(sbx: LinuxSandbox, event: Any) -> tuple[str, Any]:
    """A minimal Runtime API on the sandbox's listener: one event, return (path, posted body)."""
    loop = asyncio.get_running_loop()

    async def read_request(conn: Any) -> tuple[str, bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await loop.sock_recv(conn, 65536)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        length = 0
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.lower() == "content-length":
                length = int(v)
        while len(body) < length:
            body += await loop.sock_recv(conn, 65536)
        return lines[0].split()[1], body

    conn, _ = await loop.sock_accept(sbx.listener)
    path, _ = await read_request(conn)
    assert path.endswith("/invocation/next")
    payload = json.dumps(event).encode()
    head = (
        "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\n"
        "Lambda-Runtime-Deadline-Ms: 9999999999999\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    await loop.sock_sendall(conn, head.encode() + payload)
    path, body = await read_request(conn)
    await loop.sock_sendall(conn, b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
    conn.close()
    return path, json.loads(body)


async def wait_pooled(f: LinuxSandboxFactory, n: int = 1) -> None:
    for _ in range(400):
        if sum(len(p) for p in f._node_pools.values()) >= n:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("no pre-started node environment")


def test_prestarted_node_runs_unprivileged_with_the_functions_env(tmp_path: Path) -> None:
    task, opt = make_dirs(tmp_path)

    async def go(f: LinuxSandboxFactory) -> tuple[LinuxSandbox, str, Any]:
        assert await f.prewarm(["nodejs20.x"]) == ["nodejs20.x"]
        await wait_pooled(f)
        spec = SandboxSpec(runtime="nodejs20.x", code_dir=task, handler="index.handler",
                           env=node_env(), layer_dir=opt, tmp=vol)  # fmt: skip
        sbx = await f.start(spec)
        path, body = await serve_one(sbx, {"k": 1})
        await sbx.kill()
        return sbx, path, body

    vol = TmpVolume(512)
    try:
        sbx, path, body = run(go)
    finally:
        vol.close()
    assert sbx.prestarted
    assert path == "/2018-06-01/runtime/invocation/r1/response"
    assert body["event"] == {"k": 1}
    assert body["uid"] == 993
    assert body["capEff"] == "0000000000000000"
    assert body["seccomp"] == "2"
    assert body["taskWritable"] == "EROFS"
    assert body["cwd"] == "/var/task"
    assert body["env"] == {"FOO": "bar", "fn": "probe", "wait": None}
    assert body["layer"] == "layer"
    assert body["tmp"] == "ok"


def _exit_of_prestarted(tmp_path: Path, code: str) -> tuple[bool, Any]:
    """Start a pre-started node environment whose module runs ``code``; its exit status."""
    task, _ = make_dirs(tmp_path, code)

    async def go(f: LinuxSandboxFactory) -> tuple[bool, Any]:
        await f.prewarm(["nodejs20.x"])
        await wait_pooled(f)
        spec = SandboxSpec(runtime="nodejs20.x", code_dir=task, handler="index.handler",
                           env=node_env())  # fmt: skip
        sbx = await f.start(spec)
        async with asyncio.timeout(10):
            status = await sbx.wait()
        await sbx.kill()
        return sbx.prestarted, status

    return run(go)


def test_runtime_exit_status_is_reported(tmp_path: Path) -> None:
    prestarted, status = _exit_of_prestarted(tmp_path, "process.exit(7);\n")
    assert prestarted
    assert (status.exit_code, status.signal) == (7, None)


def test_runtime_killed_by_signal_is_reported(tmp_path: Path) -> None:
    prestarted, status = _exit_of_prestarted(tmp_path, "process.kill(process.pid, 'SIGKILL');\n")
    assert prestarted
    assert (status.exit_code, status.signal) == (None, 9)


def test_startup_variables_take_the_ordinary_path(tmp_path: Path) -> None:
    task, opt = make_dirs(tmp_path)
    base = SandboxSpec(runtime="nodejs20.x", code_dir=task, handler="index.handler",
                       env=node_env())  # fmt: skip
    assert prestart_fits(base, base.runtime_env())
    for extra in ({"NODE_OPTIONS": "--max-old-space-size=100"}, {"LANG": "C"}, {"TZ": "x"}):
        s = SandboxSpec(runtime="nodejs20.x", code_dir=task, handler="h", env=node_env(**extra))
        assert not prestart_fits(s, s.runtime_env())
    small = SandboxSpec(runtime="nodejs20.x", code_dir=task, handler="h", env=node_env(),
                        memory_mb=64, ephemeral_mb=64)  # fmt: skip
    assert not prestart_fits(small, small.runtime_env())

    async def go(f: LinuxSandboxFactory) -> tuple[bool, Any]:
        await f.prewarm(["nodejs20.x"])
        await wait_pooled(f)
        spec = SandboxSpec(runtime="nodejs20.x", code_dir=task, handler="index.handler",
                           env=node_env(NODE_OPTIONS="--no-warnings"), layer_dir=opt)  # fmt: skip
        sbx = await f.start(spec)
        _, body = await serve_one(sbx, {})
        await sbx.kill()
        return sbx.prestarted, body

    prestarted, body = run(go)
    assert not prestarted
    assert body["uid"] == 993 and body["seccomp"] == "2"


def test_worker_environment_fits_prestart(tmp_path: Path) -> None:
    from brazier.model.invocation import FunctionSpec
    from brazier.worker.runtime_env import build_environment

    fs = FunctionSpec(account="1", region="us-east-1", name="f", version="$LATEST",
                      revision_key="r", runtime="nodejs20.x", handler="index.handler",
                      code_dir=tmp_path, memory_mb=128, timeout_s=3, ephemeral_mb=512)  # fmt: skip
    spec = SandboxSpec(runtime="nodejs20.x", code_dir=tmp_path, handler="index.handler",
                       env=build_environment(fs, "stream"))  # fmt: skip
    assert prestart_fits(spec, spec.runtime_env())


def test_dead_pooled_runtime_is_discarded(tmp_path: Path) -> None:
    task, opt = make_dirs(tmp_path)

    async def go(f: LinuxSandboxFactory) -> tuple[bool, bool]:
        await f.prewarm(["nodejs20.x"])
        await wait_pooled(f)
        pool = next(iter(f._node_pools.values()))
        victim = pool[0]
        os.kill(victim.runtime_pid, 9)
        async with asyncio.timeout(10):
            await victim.wait()
        spec = SandboxSpec(runtime="nodejs20.x", code_dir=task, handler="index.handler",
                           env=node_env(), layer_dir=opt)  # fmt: skip
        sbx = await f.start(spec)
        _, body = await serve_one(sbx, {})
        await sbx.kill()
        return victim.alive(), sbx is not victim and body["uid"] == 993

    alive, ok = run(go, node_pool_size=1)
    assert not alive and ok


def test_node_outside_usr_is_mounted_for_an_ordinary_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node outside the zygote's binds (here a link under /var/tmp, as an install under /opt or
    a home directory would be) reaches a pooled sandbox as one more mount tree at its own path."""
    real = Path(shutil.which("node") or "/usr/bin/node").resolve()
    prefix = Path(tempfile.mkdtemp(prefix="brazier-node-", dir="/var/tmp"))
    try:
        os.chmod(prefix, 0o755)
        (prefix / "bin").mkdir(mode=0o755)
        try:
            os.link(real, prefix / "bin" / "node")
        except OSError:  # another filesystem
            shutil.copy2(real, prefix / "bin" / "node")
        monkeypatch.setenv("PATH", f"{prefix / 'bin'}:{os.environ['PATH']}")
        task, _ = make_dirs(tmp_path, "exports.handler = async () => ({node: process.execPath});\n")

        async def go(f: LinuxSandboxFactory) -> tuple[LinuxSandbox, Any]:
            # 64 MB: too small to take a pre-started node, so the pooled (ordinary) path.
            spec = SandboxSpec(runtime="nodejs20.x", code_dir=task, handler="index.handler",
                               env=node_env(), memory_mb=64, ephemeral_mb=64)  # fmt: skip
            sbx = await f.start(spec)
            _, body = await serve_one(sbx, {})
            await sbx.kill()
            return sbx, body

        sbx, body = run(go, node_pool_size=0)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
    assert not sbx.prestarted
    assert body == {"node": str(prefix / "bin" / "node")}
