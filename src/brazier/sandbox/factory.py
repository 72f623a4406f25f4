"""The Linux ``SandboxFactory``: zygotes per interpreter, a pool of pre-forked environments.

``start()`` takes a pre-forked environment (already in its cgroups and namespaces, PID 1 waiting
on its control socket) from the pool of the right zygote, sets its limits and sends it the spec;
the pool is refilled in the background by one task per zygote in the factory's TaskGroup.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from .base import FactoryStatistics, SandboxSpec
from .cgroups import CgroupTree, owner_pid, pid_alive, sweep_stale_trees
from .discovery import Discovery, Interpreter, Launch, default_python_roots, interpreter_at
from .errors import RuntimeUnavailable, SandboxStartError, SandboxUnavailable
from .linux import LinuxSandbox
from .rootfs import (
    SANDBOX_GID,
    SANDBOX_UID,
    add_mount_point,
    build_skeleton,
    open_tree_clone,
    prepare_tmp,
)
from .seccomp import build_filter_bpf
from .zygotes import Zygote

_log = logging.getLogger(__name__)
INIT_DIR = Path(__file__).resolve().parent.parent / "_sandbox_init"
START_TIMEOUT = 30.0


def _default_exec_interpreter() -> Interpreter:
    if os.access("/usr/bin/python3", os.X_OK):
        return interpreter_at(Path("/usr/bin/python3"))
    return interpreter_at(Path(sys.executable))


REFILL_DELAY_S = 0.015


class LinuxSandboxFactory:
    """Use as ``async with LinuxSandboxFactory(...) as f`` or through ``open_sandbox_factory``."""

    def __init__(
        self,
        *,
        pool_size: int = 2,
        python_roots: tuple[Path, ...] | None = None,
        exec_interpreter: Path | None = None,
        init_dir: Path | None = None,
        state_dir: Path | None = None,
        shm_mb: int = 16,
    ) -> None:
        self._pool_size = pool_size
        self._discovery = Discovery(python_roots or default_python_roots())
        self._exec = (
            interpreter_at(exec_interpreter) if exec_interpreter else _default_exec_interpreter()
        )
        self._init_dir = (init_dir or INIT_DIR).resolve()
        self._state_dir = state_dir
        self._own_state = state_dir is None
        self._shm_mb = shm_mb
        # The pid in the name lets a later factory sweep what a killed one left (sweep_stale).
        self._name = f"brazier-{os.getpid()}-{secrets.token_hex(4)}"
        self._zygotes: dict[Path, Zygote] = {}
        self._zygote_locks: collections.defaultdict[Path, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        self._pools: dict[Path, collections.deque[LinuxSandbox]] = {}
        self._wakeups: dict[Path, asyncio.Event] = {}
        self._refills: list[asyncio.Task[None]] = []
        self._live: dict[str, LinuxSandbox] = {}
        self._started = self._from_pool = 0
        self._tg: asyncio.TaskGroup | None = None
        self._closed = False
        self._binds: list[tuple[str, str, bool]] = []

    async def __aenter__(self) -> LinuxSandboxFactory:
        if os.geteuid() != 0:
            raise SandboxUnavailable("sandboxes need root (namespaces, mounts, cgroups)")
        sweep_stale()
        self._tree = CgroupTree(self._name)
        self._tree.create()
        if self._state_dir is None:
            base = "/run" if os.access("/run", os.W_OK) else None
            self._state_dir = Path(tempfile.mkdtemp(prefix=self._name + "-", dir=base))
        self._root = self._state_dir / "root"
        self._binds = build_skeleton(self._root)
        self._bpf_path = self._state_dir / "seccomp.bpf"
        self._bpf_path.write_bytes(build_filter_bpf())
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def statistics(self) -> FactoryStatistics:
        running = sum(1 for s in self._live.values() if s.state != "dead")
        pooled = sum(len(p) for p in self._pools.values())
        return FactoryStatistics(
            len(self._zygotes), pooled, running, self._started, self._from_pool
        )

    async def prewarm(self, runtimes: Iterable[str]) -> list[str]:
        """Start the zygotes (and their pre-forked pools) of these runtimes ahead of the first
        invocation; runtimes this machine lacks are skipped. Returns the ones started."""
        started = []
        for runtime in runtimes:
            try:
                launch = self._discovery.launch(runtime, self._exec)
                await self._zygote(launch.zygote)
            except (RuntimeUnavailable, SandboxUnavailable):
                continue
            started.append(runtime)
        return started

    async def start(self, spec: SandboxSpec) -> LinuxSandbox:
        if self._closed or self._tg is None:
            raise SandboxUnavailable("the sandbox factory is closed")
        launch = self._discovery.launch(spec.runtime, self._exec)
        zyg = await self._zygote(launch.zygote)
        sbx, pooled = await self._take(zyg)
        self._live = {k: v for k, v in self._live.items() if v.state != "dead"}
        self._live[sbx.sandbox_id] = sbx
        try:
            if not spec.code_dir.is_dir():
                raise SandboxStartError("Sandbox.Failure", f"code dir {spec.code_dir} is missing")
            sbx.cgroup.set_limits(spec.memory_mb, spec.ephemeral_mb)
            trees: list[int] = []
            try:
                plan = self._plan(spec, launch, zyg, trees)
                async with asyncio.timeout(START_TIMEOUT):
                    await sbx.launch(plan, trees)
            finally:
                for fd in trees:
                    os.close(fd)
        except BaseException:
            await sbx.kill()
            raise
        self._started += 1
        self._from_pool += pooled
        return sbx

    def _plan(
        self, spec: SandboxSpec, launch: Launch, zyg: Zygote, fds: list[int]
    ) -> dict[str, Any]:
        binds = list(self._binds)
        for prefix in (zyg.interpreter.prefix, launch.extra_prefix):
            if prefix is not None:
                binds.append((str(prefix), add_mount_point(self._root, prefix), True))
        binds.append((str(self._init_dir), "/var/runtime", True))
        trees: list[tuple[int, str, bool]] = []

        def tree(path: Path, dst: str, ro: bool) -> None:
            try:
                fds.append(open_tree_clone(path))
            except OSError as e:
                raise SandboxStartError("Sandbox.Failure", f"cannot mount {path}: {e}") from e
            trees.append((len(fds) - 1, dst, ro))

        tree(spec.code_dir, "/var/task", True)
        if spec.layer_dir is not None:
            tree(spec.layer_dir, "/opt", True)
        if spec.tmp_dir is not None:
            prepare_tmp(spec.tmp_dir, spec.ephemeral_mb)
            tree(spec.tmp_dir, "/tmp", False)  # noqa: S108 - the sandbox's own /tmp
        env = spec.runtime_env()
        minor = launch.python_minor
        extra = [p for p in env.get("PYTHONPATH", "").split(":") if p]
        sys_path = ["/var/task", "/opt/python", f"/opt/python/lib/python{minor}/site-packages"]
        sys_path += [p for p in extra if p not in sys_path] + list(zyg.hello["stdlib_path"])
        sys_path += ["/var/runtime"] if "/var/runtime" not in sys_path else []
        return {
            "t": "spec",
            "root": str(self._root),
            "binds": binds,
            "trees": trees,
            "tmp_size_mb": 0 if spec.tmp_dir else spec.ephemeral_mb,
            "shm_mb": self._shm_mb,
            "env": env,
            "mode": launch.mode,
            "exec": {"candidates": launch.exec_candidates, "args": launch.exec_args},
            "handler": spec.handler,
            "sys_path": sys_path,
            "uid": SANDBOX_UID,
            "gid": SANDBOX_GID,
            "nofile": 1024,
        }

    async def _zygote(self, interp: Interpreter) -> Zygote:
        async with self._zygote_locks[interp.path]:
            zyg = self._zygotes.get(interp.path)
            if zyg is not None:
                return zyg
            if interp.prefix is not None:
                add_mount_point(self._root, interp.prefix)
            zyg = Zygote(interp, self._init_dir, self._bpf_path)
            await zyg.start()
            self._zygotes[interp.path] = zyg
            self._pools[interp.path] = collections.deque()
            if self._pool_size > 0 and self._tg is not None:
                self._wakeups[interp.path] = asyncio.Event()
                self._refills.append(self._tg.create_task(self._refill(zyg)))
            return zyg

    async def _take(self, zyg: Zygote) -> tuple[LinuxSandbox, bool]:
        pool = self._pools[zyg.interpreter.path]
        try:
            while pool:
                sbx = pool.popleft()
                if sbx.alive():
                    return sbx, True
                await sbx.kill()
            return await self._prefork(zyg), False
        finally:
            if zyg.interpreter.path in self._wakeups:
                self._wakeups[zyg.interpreter.path].set()

    async def _prefork(self, zyg: Zygote) -> LinuxSandbox:
        sid = "sbx-" + secrets.token_hex(6)
        cg = self._tree.child(sid)
        try:
            cg.create()
        except OSError as e:
            await cg.remove()
            raise SandboxUnavailable(f"cannot create cgroups for {sid}: {e}") from e
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(out_r, False)
        mine.setblocking(False)
        sbx = LinuxSandbox(sid, zyg, cg, mine, out_r)
        try:
            zyg.fork(cg.procs_files(), theirs.fileno(), out_w)
        finally:
            theirs.close()
            os.close(out_w)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await sbx.await_forked()
        except BaseException:
            await sbx.kill()
            raise
        return sbx

    async def _refill(self, zyg: Zygote) -> None:
        key = zyg.interpreter.path
        pool, wake = self._pools[key], self._wakeups[key]
        while not self._closed:
            # Let the sandbox just taken initialise first: a fork (page tables, cgroup joins)
            # competes with it for the CPU and shows up as cold-start latency. (Waiting for
            # starts to pause instead starves the pool during a run of cold starts.)
            await asyncio.sleep(REFILL_DELAY_S)
            while len(pool) < self._pool_size and not self._closed:
                try:
                    pool.append(await self._prefork(zyg))
                except SandboxUnavailable:
                    return  # the zygote is gone; start() will report it
                except Exception:  # never let a refill failure cancel the owner's TaskGroup
                    _log.exception("pre-forking a sandbox failed; retrying in 1 s")
                    await asyncio.sleep(1.0)
            wake.clear()
            await wake.wait()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._refills:
            task.cancel()
        if self._tg is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._tg.__aexit__(None, None, None)
        sandboxes = [*self._live.values(), *(s for p in self._pools.values() for s in p)]
        await asyncio.gather(*(s.kill() for s in sandboxes), return_exceptions=True)
        for zyg in self._zygotes.values():
            await zyg.close()
        self._zygotes.clear()
        self._pools.clear()
        self._tree.remove()
        if self._own_state and self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)


def sweep_stale() -> None:
    """Remove cgroups and state dirs left by factories whose process was killed (kill -9)."""
    sweep_stale_trees()
    base = Path("/run")
    mounted = Path("/proc/self/mountinfo").read_text()
    with contextlib.suppress(OSError):
        for state in base.glob("brazier-*"):
            pid = owner_pid(state.name)
            if pid is None or state.is_symlink() or not state.is_dir():
                continue
            if pid_alive(pid):
                continue
            if f" {state}/" in mounted or f" {state} " in mounted:
                continue  # something is still mounted there: leave it alone
            shutil.rmtree(state, ignore_errors=True)


@contextlib.asynccontextmanager
async def open_sandbox_factory(
    *,
    pool_size: int = 2,
    python_roots: tuple[Path, ...] | None = None,
    exec_interpreter: Path | None = None,
    init_dir: Path | None = None,
    state_dir: Path | None = None,
) -> AsyncIterator[LinuxSandboxFactory]:
    """Open a factory for the lifetime of the block; every sandbox is killed when it ends."""
    factory = LinuxSandboxFactory(
        pool_size=pool_size,
        python_roots=python_roots,
        exec_interpreter=exec_interpreter,
        init_dir=init_dir,
        state_dir=state_dir,
    )
    async with factory:
        yield factory
