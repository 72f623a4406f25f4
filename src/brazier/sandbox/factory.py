"""The Linux ``SandboxFactory``: zygotes per interpreter, a pool of pre-forked environments.

``start()`` takes a pre-forked environment (already in its cgroups and namespaces, PID 1 waiting
on its control socket) from the pool of the right zygote, sets its limits and sends it the spec;
the pool is refilled in the background by one task per zygote in the factory's TaskGroup.

Node runtimes have a second pool, per (zygote, node binary), of *pre-started* environments: PID 1
has built the function-independent filesystem and pivoted into it, and its child already runs
``node node_runtime.mjs`` in wait mode, unprivileged and under seccomp. ``start()`` then only
attaches the code, layers and /tmp trees and hands node the environment and handler (node's own
start-up, ~65 ms, is off the critical path). A function whose environment changes how node starts
(NODE_OPTIONS, LD_LIBRARY_PATH, locale, ...: see ``prestart_fits``), or that is too small to
hold an idle node, and any start that finds that pool empty, take the ordinary path.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import logging
import os
import resource
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from . import native
from .base import FactoryStatistics, SandboxSpec, environment_capacity
from .cgroups import open_cgroup_tree, owner_pid, pid_alive, sweep_stale_trees
from .codetrees import CodeTrees
from .discovery import (
    SDK_MOUNT,
    SDK_PYTHON_PATH,
    Discovery,
    Interpreter,
    Launch,
    interpreter_at,
)
from .errors import (
    RuntimeUnavailable,
    SandboxCapacityExceeded,
    SandboxStartError,
    SandboxUnavailable,
)
from .linux import LinuxSandbox
from .network import EgressNetwork, NetworkConfig, NetworkUnavailable
from .rootfs import (
    EMPTY_DIR,
    SANDBOX_GID,
    SANDBOX_UID,
    add_mount_point,
    build_skeleton,
    copy_runtime,
    hidden_dirs,
    mount_root,
    open_tree_clone,
    unmount_root,
)
from .seccomp import build_filter_bpf
from .tmpdisk import PER_SIZE, TmpDisks, in_disk_thread
from .uids import UidAllocator
from .zygotes import Zygote

_log = logging.getLogger(__name__)
INIT_DIR = Path(__file__).resolve().parent.parent / "_sandbox_init"
INIT_BINARY = "_brazier_init"  # brazier_init.c, built by sandbox/native.py
START_TIMEOUT = 30.0
# A burst of cold starts: at most this many starts run at once (per CPU; the zygote forks one at
# a time and every start competes for the CPUs), the rest wait their turn for at most
# START_QUEUE_TIMEOUT and are then throttled (SandboxCapacityExceeded: a 429). Without a bound,
# 2,000 starts at once kept the event loop busy for seconds and ran into START_TIMEOUT. A start
# waits mostly on PID 1 (building its root, exec): 2,000 invokes at account concurrency 1,000
# on 2 loaded CPUs got 574 environments within the 10 s at 4 per CPU, 863-1,000 at 16, 964 at 32.
STARTS_PER_CPU = 16
START_QUEUE_TIMEOUT = 10.0


def _default_exec_interpreter() -> Interpreter:
    if os.access("/usr/bin/python3", os.X_OK):
        return interpreter_at(Path("/usr/bin/python3"))
    return interpreter_at(Path(sys.executable))


REFILL_DELAY_S = 0.015
NODE_POOL_SIZE = 8  # pre-started node environments per node binary (each holds an idle node)
# Pre-forked environments per zygote. Measured with 60 back-to-back cold starts: with 2, every
# third one found the pool empty and forked on the critical path (25-45 ms instead of ~9).
POOL_SIZE = 6

# The environment a pre-started node runs with until it gets the function's: the values the worker
# gives every node function (worker/runtime_env.py) for whatever node reads at start-up.
PRESTART_ENV = {
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH": (
        "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:"
        "/var/task/lib:/opt/lib"
    ),
    "LANG": "en_US.UTF-8",
    "TZ": ":UTC",
    "LC_CTYPE": "C.UTF-8",
}
# Variables node, libuv, OpenSSL, ICU or the dynamic linker read when the process starts: a
# function may use a pre-started node only if it has the same values (or lacks them likewise).
# NODE_PATH is exempt: the runtime recomputes the CommonJS global paths after the go message.
_STARTUP_VARS = frozenset(
    {"LANG", "LANGUAGE", "TZ", "GLIBC_TUNABLES", "FORCE_COLOR", "NO_COLOR", "TERM"}
)
_STARTUP_PREFIXES = ("NODE_", "UV_", "LC_", "LD_", "OPENSSL_", "SSL_CERT_", "MALLOC_")
# The smallest memory limit given a pre-started node (an idle node is already charged ~40 MB
# when the limit is set): Lambda's minimum MemorySize, so every function qualifies by size. It was
# 256 MB of MemorySize + EphemeralStorage, which the default 128 + 512 MB passed.
PRESTART_MIN_MB = 128


def prestart_fits(spec: SandboxSpec, env: dict[str, str]) -> bool:
    """Whether this function can take a pre-started node (see the module docstring)."""
    if spec.memory_mb < PRESTART_MIN_MB:
        return False
    if "_BRAZIER_WAIT_FD" in env:
        return False
    for key in {*env, *PRESTART_ENV}:
        startup = key in _STARTUP_VARS or key.startswith(_STARTUP_PREFIXES)
        if startup and key != "NODE_PATH" and env.get(key) != PRESTART_ENV.get(key):
            return False
    return True


class LinuxSandboxFactory:
    """Use as ``async with LinuxSandboxFactory(...) as f`` or through ``open_sandbox_factory``."""

    def __init__(
        self,
        *,
        pool_size: int = POOL_SIZE,
        python_roots: tuple[Path, ...] | None = None,
        exec_interpreter: Path | None = None,
        init_dir: Path | None = None,
        state_dir: Path | None = None,
        shm_mb: int = 16,
        node_pool_size: int | None = None,
        discovery: Discovery | None = None,
        network: NetworkConfig | None = None,
        tmp_disk_dir: Path | None = None,
        tmp_disks_per_size: int | None = None,
    ) -> None:
        """``tmp_disk_dir``: where the anonymous images of disk-backed /tmp filesystems live
        (the data dir's filesystem; default /var/tmp); see tmpdisk.py."""
        self._network_config = network  # None: loopback only (no egress)
        self._net: EgressNetwork | None = None
        self._pool_size = pool_size
        self._tmp_disk_dir = tmp_disk_dir or Path("/var/tmp")  # noqa: S108 - disk, not a tmpfs
        self._tmp_disks_per_size = tmp_disks_per_size
        self._disks: TmpDisks | None = None
        self._node_pool_size = NODE_POOL_SIZE if node_pool_size is None else node_pool_size
        self._discovery = discovery or (
            Discovery(python_roots) if python_roots else Discovery.default()
        )
        self._exec = (
            interpreter_at(exec_interpreter) if exec_interpreter else _default_exec_interpreter()
        )
        # The package's own, or a cache copy with the native helpers built (on first use).
        self._init_dir = (init_dir or native.init_dir()).resolve()
        self._state_dir = state_dir
        self._own_state = state_dir is None
        self._shm_mb = shm_mb
        # The pid in the name lets a later factory sweep what a killed one left (sweep_stale).
        self._name = f"brazier-{os.getpid()}-{secrets.token_hex(4)}"
        self._zygotes: dict[Path, Zygote] = {}
        self._bases: dict[Path, dict[str, Any]] = {}  # per zygote: see _base
        self._zygote_locks: collections.defaultdict[Path, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        self._pools: dict[Path, collections.deque[LinuxSandbox]] = {}
        self._wakeups: dict[Path, asyncio.Event] = {}
        self._refills: list[asyncio.Task[None]] = []
        self._node_pools: dict[tuple[Path, str], collections.deque[LinuxSandbox]] = {}
        self._node_wakeups: dict[tuple[Path, str], asyncio.Event] = {}
        self._live: dict[str, LinuxSandbox] = {}
        self._prune_live_at = 64
        self._started = self._from_pool = 0
        self._tg: asyncio.TaskGroup | None = None
        self._closed = False
        self._binds: list[tuple[str, str, bool]] = []
        self._starting = asyncio.Semaphore(STARTS_PER_CPU * (os.cpu_count() or 1))
        self.capacity = _environment_capacity()  # environments the open files limit allows
        self._pending = 0  # starts admitted and not finished (each may become one more)
        self._uids = UidAllocator()

    async def __aenter__(self) -> LinuxSandboxFactory:
        if os.geteuid() != 0:
            raise SandboxUnavailable("sandboxes need root (namespaces, mounts, cgroups)")
        sweep_stale()
        self._tree = open_cgroup_tree(self._name)
        self._tree.create()
        if self._state_dir is None:
            base = "/run" if os.access("/run", os.W_OK) else None
            self._state_dir = Path(tempfile.mkdtemp(prefix=self._name + "-", dir=base))
        self._root = self._state_dir / "root"
        unmount_root(self._root)  # a stale one (same state dir after a kill -9); else no-op
        mount_root(self._root)
        self._binds = build_skeleton(self._root)
        self._code_trees = CodeTrees(self._root / EMPTY_DIR.lstrip("/"))
        copy_runtime(self._init_dir, self._root)
        self._net = _open_network(self._network_config, self._root / "etc")
        self._bpf_path = self._state_dir / "seccomp.bpf"
        self._bpf_path.write_bytes(build_filter_bpf())
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._open_disks(self._tg)
        return self

    def _open_disks(self, tg: asyncio.TaskGroup) -> None:
        """Disk-backed /tmp when the host allows (a pool kept full by a task of ``tg``); else
        each environment's /tmp is a tmpfs counted as memory, with one warning."""
        why_not = TmpDisks.probe(self._tmp_disk_dir)
        if why_not is not None:
            _log.warning(
                "/tmp falls back to tmpfs (counted as function memory: the memory limit is"  # noqa: S108
                " MemorySize + EphemeralStorage): %s",
                why_not,
            )
            return
        per_size = PER_SIZE if self._tmp_disks_per_size is None else self._tmp_disks_per_size
        self._disks = TmpDisks(self._tmp_disk_dir, per_size=per_size)
        self._refills.append(tg.create_task(self._disks.run()))

    @property
    def tmp_disks(self) -> TmpDisks | None:
        """The pool of disk-backed /tmp filesystems (None: tmpfs fallback)."""
        return self._disks

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def statistics(self) -> FactoryStatistics:
        running = sum(1 for s in self._live.values() if s.state != "dead")
        pooled = sum(len(p) for p in [*self._pools.values(), *self._node_pools.values()])
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
                zyg = await self._zygote(launch.zygote)
                self._node_pool(zyg, launch)
            except (RuntimeUnavailable, SandboxUnavailable):
                continue
            started.append(runtime)
        return started

    async def start(self, spec: SandboxSpec) -> LinuxSandbox:
        if self._closed or self._tg is None:
            raise SandboxUnavailable("the sandbox factory is closed")
        try:
            launch = self._discovery.launch(spec.runtime, self._exec)
            self._check_capacity()
            self._pending += 1
            try:
                try:
                    async with asyncio.timeout(START_QUEUE_TIMEOUT):
                        await self._starting.acquire()
                except TimeoutError:
                    raise SandboxCapacityExceeded(
                        f"no environment could start within {START_QUEUE_TIMEOUT:g} s"
                    ) from None
                try:
                    return await self._start(spec, launch)
                finally:
                    self._starting.release()
            finally:
                self._pending -= 1
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                raise SandboxCapacityExceeded(f"out of descriptors: {e}") from e
            raise

    def _check_capacity(self) -> None:
        """Refuse a start while the server holds (or is starting) as many environments as its
        open files limit allows: one more would leave running ones without descriptors."""
        if self.capacity is None or len(self._live) + self._pending < self.capacity:
            return
        self._live = {k: v for k, v in self._live.items() if v.state != "dead"}
        if len(self._live) + self._pending >= self.capacity:
            raise SandboxCapacityExceeded(
                f"the server holds {len(self._live) + self._pending} environments, as many as"
                " its open files limit allows"
            )

    async def _start(self, spec: SandboxSpec, launch: Launch) -> LinuxSandbox:
        zyg = await self._zygote(launch.zygote)
        if spec.tmp is not None and not spec.tmp.ready and self._disks is not None:
            try:
                spec.tmp.adopt(await self._disks.take(spec.tmp.size_mb))
            except OSError as e:
                raise SandboxStartError("Sandbox.Failure", f"cannot prepare /tmp: {e}") from e
        env = spec.runtime_env()
        sbx = None
        # A pre-started runtime already runs as its own host uid: not for an environment that
        # has one (its /tmp files are that uid's).
        keeps_uid = spec.tmp is not None and spec.tmp.uid_lease is not None
        if launch.prestart and prestart_fits(spec, env) and not keeps_uid:
            sbx = await self._take_prestarted(zyg, launch)
        if sbx is not None:
            if spec.tmp is not None:
                spec.tmp.uid_lease = sbx.give_lease()
            return await self._start_prestarted(sbx, spec, env)
        sbx, pooled = await self._take(zyg)
        ids = self._host_ids(sbx, spec)
        return await self._assign(
            sbx,
            spec,
            lambda trees: {**self._plan(spec, launch, zyg, trees), "ids": ids},
            pooled=pooled,
        )

    def _host_ids(self, sbx: LinuxSandbox, spec: SandboxSpec | None) -> dict[str, int]:
        """The host uid/gid the sandbox user maps to: the environment's (kept by its /tmp across
        resets), or the sandbox's own (released when it dies)."""
        try:
            if spec is not None and spec.tmp is not None:
                if spec.tmp.uid_lease is None:
                    spec.tmp.uid_lease = self._uids.lease()
                lease = spec.tmp.uid_lease
            else:
                lease = self._uids.lease()
                sbx.own_lease(lease)
        except OSError as e:
            raise SandboxUnavailable(f"cannot lease a sandbox uid: {e}") from e
        return {"host_uid": lease.uid, "host_gid": lease.gid}

    async def _start_prestarted(
        self, sbx: LinuxSandbox, spec: SandboxSpec, env: dict[str, str]
    ) -> LinuxSandbox:
        def plan(trees: list[int]) -> dict[str, Any]:
            return {
                "t": "spec",
                "trees": self._trees(spec, trees),
                "tmp_size_mb": 0 if spec.tmp is not None else spec.ephemeral_mb,
                "env": env,
                "handler": spec.handler,
            }

        return await self._assign(sbx, spec, plan, pooled=True)

    async def _assign(
        self,
        sbx: LinuxSandbox,
        spec: SandboxSpec,
        make_plan: Callable[[list[int]], dict[str, Any]],
        *,
        pooled: bool,
    ) -> LinuxSandbox:
        """Give a forked sandbox its function: limits, then the plan (and mount fds) to PID 1."""
        if len(self._live) >= self._prune_live_at:  # dead ones dropped now and then: O(1) each
            self._live = {k: v for k, v in self._live.items() if v.state != "dead"}
            self._prune_live_at = max(64, 2 * len(self._live))
        self._live[sbx.sandbox_id] = sbx
        try:
            if not spec.code_dir.is_dir():
                raise SandboxStartError("Sandbox.Failure", f"code dir {spec.code_dir} is missing")
            on_disk = spec.tmp is not None and spec.tmp.on_disk
            sbx.cgroup.set_limits(spec.memory_mb, 0 if on_disk else spec.ephemeral_mb)
            if self._net is not None and sbx.network is not None:
                try:
                    await self._net.apply(sbx.network, spec.egress)
                except NetworkUnavailable as e:
                    raise SandboxStartError("Sandbox.Failure", str(e)) from e
            trees: list[int] = []
            try:
                plan = make_plan(trees)
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

    def _binds_for(self, zyg: Zygote, extra: Path | None = None) -> list[tuple[str, str, bool]]:
        binds = list(self._binds)
        for prefix in (zyg.interpreter.prefix, extra):
            if prefix is not None:
                binds.append((str(prefix), add_mount_point(self._root, prefix), True))
        sdk = self._discovery.sdk()  # the AWS SDKs, when installed (runtimes install sdk)
        if sdk is not None:
            binds.append((str(sdk), SDK_MOUNT, True))
        bound = [dst for _, dst, _ in binds]
        for hidden in hidden_dirs(bound):  # read-only binds of the skeleton's empty dir
            binds.append((str(self._root) + EMPTY_DIR, hidden, True))
        return binds

    def _base(self, zyg: Zygote) -> dict[str, Any]:
        """What a pooled environment of ``zyg`` builds before its function is known (made once
        per zygote, with its mount points: see ``_zygote``)."""
        return {
            "root": str(self._root),
            "binds": self._binds_for(zyg),
            "shm_mb": self._shm_mb,
            "uid": SANDBOX_UID,
            "gid": SANDBOX_GID,
            "nofile": 1024,
            "init": self._init_binary(),
        }

    def _init_binary(self) -> str | None:
        for d in (self._init_dir, INIT_DIR):
            if (d / INIT_BINARY).is_file():
                return str(d / INIT_BINARY)
        return None

    def _trees(
        self, spec: SandboxSpec, fds: list[int], extra: Path | None = None
    ) -> list[tuple[int, str, bool]]:
        """Detached mount trees of the code, layers, /tmp and an ``extra`` prefix (a runtime's
        outside the zygote's binds), fds appended to ``fds``."""
        trees: list[tuple[int, str, bool]] = []

        def tree(path: Path, dst: str, ro: bool, clone: Callable[[Path], int]) -> None:
            try:
                fds.append(clone(path))
            except OSError as e:
                raise SandboxStartError("Sandbox.Failure", f"cannot mount {path}: {e}") from e
            trees.append((len(fds) - 1, dst, ro))

        if extra is not None:
            tree(extra, add_mount_point(self._root, extra), True, open_tree_clone)
        # Code and layers as filesystems of their own: no host path in mountinfo (codetrees.py).
        tree(spec.code_dir, "/var/task", True, self._code_trees.clone)
        if spec.layer_dir is not None:
            tree(spec.layer_dir, "/opt", True, self._code_trees.clone)
        if spec.tmp is not None:
            try:
                fds.append(spec.tmp.clone())
            except OSError as e:
                raise SandboxStartError("Sandbox.Failure", f"cannot mount /tmp: {e}") from e
            trees.append((len(fds) - 1, "/tmp", False))  # noqa: S108 - the sandbox's own /tmp
        return trees

    def _plan(
        self, spec: SandboxSpec, launch: Launch, zyg: Zygote, fds: list[int]
    ) -> dict[str, Any]:
        trees = self._trees(spec, fds, launch.extra_prefix)
        env = spec.runtime_env()
        minor = launch.python_minor
        extra = [p for p in env.get("PYTHONPATH", "").split(":") if p]
        sys_path = ["/var/task", "/opt/python", f"/opt/python/lib/python{minor}/site-packages"]
        sys_path += [p for p in extra if p not in sys_path] + list(zyg.hello["stdlib_path"])
        sys_path += ["/var/runtime"] if "/var/runtime" not in sys_path else []
        sys_path += [SDK_PYTHON_PATH]  # as Lambda's boto3: after the function's and the layers'
        return {
            "t": "spec",
            "trees": trees,
            "tmp_size_mb": 0 if spec.tmp is not None else spec.ephemeral_mb,
            "env": env,
            "mode": launch.mode,
            "exec": {"candidates": launch.exec_candidates, "args": launch.exec_args},
            "handler": spec.handler,
            "sys_path": sys_path,
        }

    async def _zygote(self, interp: Interpreter) -> Zygote:
        async with self._zygote_locks[interp.path]:
            zyg = self._zygotes.get(interp.path)
            if zyg is not None and zyg.alive:
                return zyg
            if zyg is not None:  # it died (killed, crashed): start another in its place
                _log.warning("the zygote of %s died; starting a new one", interp.path)
                await self._forget_zygote(zyg)
            zyg = Zygote(interp, self._init_dir, self._bpf_path)
            await zyg.start()
            self._zygotes[interp.path] = zyg
            self._bases[interp.path] = self._base(zyg)
            self._pools[interp.path] = collections.deque()
            if self._pool_size > 0 and self._tg is not None:
                self._wakeups[interp.path] = asyncio.Event()
                self._refills.append(self._tg.create_task(self._refill(zyg)))
            return zyg

    async def _forget_zygote(self, zyg: Zygote) -> None:
        """Drop a dead zygote and the environments pooled from it (its refills have stopped:
        they found it gone)."""
        key = zyg.interpreter.path
        del self._zygotes[key]
        del self._bases[key]
        pooled = list(self._pools.pop(key, ()))
        for node_key in [k for k in self._node_pools if k[0] == key]:
            pooled += self._node_pools.pop(node_key)
            self._node_wakeups.pop(node_key, None)
        self._wakeups.pop(key, None)
        await asyncio.gather(*(s.kill() for s in pooled), return_exceptions=True)
        await zyg.close()

    def _node_pool(self, zyg: Zygote, launch: Launch) -> tuple[Path, str] | None:
        """The key of the pre-started pool for this runtime, created (with its refill task) on
        first use; None when the runtime cannot be pre-started."""
        if not launch.prestart or self._node_pool_size <= 0 or self._tg is None:
            return None
        key = (zyg.interpreter.path, launch.exec_candidates[0])
        if key not in self._node_pools:
            self._node_pools[key] = collections.deque()
            self._node_wakeups[key] = asyncio.Event()
            self._refills.append(self._tg.create_task(self._refill_prestarted(zyg, launch, key)))
        return key

    async def _take_prestarted(self, zyg: Zygote, launch: Launch) -> LinuxSandbox | None:
        key = self._node_pool(zyg, launch)
        if key is None:
            return None
        pool = self._node_pools[key]
        try:
            while pool:
                sbx = pool.popleft()
                if sbx.alive():
                    return sbx
                await sbx.kill()
            return None
        finally:
            self._node_wakeups[key].set()

    async def _prestart(self, zyg: Zygote, launch: Launch) -> LinuxSandbox:
        sbx = await self._prefork(zyg, prestart=True, background=True)
        plan = {
            **self._bases[zyg.interpreter.path],
            "t": "prestart",
            "binds": self._binds_for(zyg, launch.extra_prefix),
            "exec": {"path": launch.exec_candidates[0], "args": list(launch.exec_args)},
            "env": PRESTART_ENV,
        }
        try:
            plan.update(self._host_ids(sbx, None))
            async with asyncio.timeout(START_TIMEOUT):
                await sbx.prestart(plan)
        except BaseException:
            await sbx.kill()
            raise
        return sbx

    async def _refill_prestarted(self, zyg: Zygote, launch: Launch, key: tuple[Path, str]) -> None:
        pool, wake = self._node_pools[key], self._node_wakeups[key]
        while not self._closed:
            await asyncio.sleep(REFILL_DELAY_S)
            while len(pool) < self._node_pool_size and not self._closed:
                try:
                    pool.append(await self._prestart(zyg, launch))
                except SandboxCapacityExceeded:
                    await asyncio.sleep(1.0)  # full: the pool can wait
                except SandboxUnavailable:
                    return
                except Exception:  # never let a refill failure cancel the owner's TaskGroup
                    _log.exception("pre-starting a sandbox failed; retrying in 1 s")
                    await asyncio.sleep(1.0)
            wake.clear()
            await wake.wait()

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

    async def _prefork(
        self, zyg: Zygote, *, prestart: bool = False, background: bool = False
    ) -> LinuxSandbox:
        """A new environment of ``zyg``, waiting for its function with its base filesystem built
        and pivoted into; or, to be pre-started, waiting for its pre-start plan."""
        sid = "sbx-" + secrets.token_hex(6)
        cg = self._tree.child(sid)
        try:
            await _in_thread(functools.partial(cg.create, background=background), cg.remove)
        except OSError as e:
            await cg.remove()
            if e.errno in (errno.EMFILE, errno.ENFILE):
                raise SandboxCapacityExceeded(f"out of descriptors: {e}") from e
            raise SandboxUnavailable(f"cannot create cgroups for {sid}: {e}") from e
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(out_r, False)
        mine.setblocking(False)
        sbx = LinuxSandbox(sid, zyg, cg, mine, out_r)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                try:
                    await zyg.fork(
                        cg.procs_files(),
                        theirs.fileno(),
                        out_w,
                        None if prestart else self._bases[zyg.interpreter.path],
                    )
                finally:
                    theirs.close()
                    os.close(out_w)
                await sbx.await_forked()
                if self._net is not None:
                    await self._attach_network(self._net, sbx)
        except BaseException:
            await sbx.kill()
            raise
        return sbx

    async def _attach_network(self, net: EgressNetwork, sbx: LinuxSandbox) -> None:
        try:
            lease = await net.attach(sbx.pid)
        except OSError as e:
            raise SandboxStartError("Sandbox.Failure", f"cannot attach egress: {e}") from e
        sbx.network = lease
        sbx.on_dead = functools.partial(net.release, lease)

    async def _refill(self, zyg: Zygote) -> None:
        key = zyg.interpreter.path
        pool, wake = self._pools[key], self._wakeups[key]
        while not self._closed:
            # Let the sandbox just taken initialise first: a fork (page tables, cgroup joins)
            # competes with it for the CPU and shows up as cold-start latency. (Waiting for
            # starts to pause instead starves the pool during a run of cold starts.)
            await asyncio.sleep(REFILL_DELAY_S)
            while len(pool) < self._pool_size and not self._closed:
                if self._zygotes.get(key) is not zyg:
                    return  # replaced: the new zygote has its own refill
                try:
                    pool.append(await self._prefork(zyg, background=True))
                except SandboxCapacityExceeded:
                    await asyncio.sleep(1.0)  # full: the pool can wait
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
        pools = [*self._pools.values(), *self._node_pools.values()]
        sandboxes = [*self._live.values(), *(s for p in pools for s in p)]
        await asyncio.gather(*(s.kill() for s in sandboxes), return_exceptions=True)
        for zyg in self._zygotes.values():
            await zyg.close()
        self._zygotes.clear()
        self._pools.clear()
        self._node_pools.clear()
        self._tree.remove()
        if self._net is not None:
            await self._net.close()
        self._code_trees.close()
        if self._disks is not None:
            await in_disk_thread(self._disks.close)
        if self._state_dir is not None:
            unmount_root(self._state_dir / "root")
        if self._own_state and self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)


async def _in_thread(work: Callable[[], None], undo: Callable[[], Awaitable[None]]) -> None:
    """Run blocking ``work`` in a thread, off the event loop: making a sandbox's cgroups is
    0.13 ms at the median but 12-13 ms at p99 here (memcg creation), each a stall of every
    request. Cancelled, it lets ``work`` finish and then ``undo``es it."""
    done = asyncio.get_running_loop().run_in_executor(None, work)
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await done
        await undo()
        raise


def _open_network(config: NetworkConfig | None, etc: Path) -> EgressNetwork | None:
    """The egress network, its /etc files written into the skeleton; None without a config or
    when the host cannot do it (logged: environments then have loopback only)."""
    if config is None:
        return None
    net = EgressNetwork(config)
    try:
        net.open()
    except NetworkUnavailable as e:
        _log.error("%s; environments get loopback only", e)
        return None
    net.write_etc(etc)
    return net


def _environment_capacity() -> int | None:
    """How many environments the open files limit allows (None: unlimited)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return None
    return environment_capacity(soft)


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
            if f" {state}/root " in mounted:  # its root tmpfs (mount_root)
                unmount_root(state / "root")
                mounted = Path("/proc/self/mountinfo").read_text()
            if f" {state}/" in mounted or f" {state} " in mounted:
                continue  # something is still mounted there: leave it alone
            shutil.rmtree(state, ignore_errors=True)


@contextlib.asynccontextmanager
async def open_sandbox_factory(
    *,
    pool_size: int = POOL_SIZE,
    python_roots: tuple[Path, ...] | None = None,
    exec_interpreter: Path | None = None,
    init_dir: Path | None = None,
    state_dir: Path | None = None,
    node_pool_size: int | None = None,
    discovery: Discovery | None = None,
    network: NetworkConfig | None = None,
    tmp_disk_dir: Path | None = None,
    tmp_disks_per_size: int | None = None,
) -> AsyncIterator[LinuxSandboxFactory]:
    """Open a factory for the lifetime of the block; every sandbox is killed when it ends."""
    factory = LinuxSandboxFactory(
        pool_size=pool_size,
        python_roots=python_roots,
        exec_interpreter=exec_interpreter,
        init_dir=init_dir,
        state_dir=state_dir,
        node_pool_size=node_pool_size,
        discovery=discovery,
        network=network,
        tmp_disk_dir=tmp_disk_dir,
        tmp_disks_per_size=tmp_disks_per_size,
    )
    async with factory:
        yield factory
