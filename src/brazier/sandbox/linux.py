"""One Linux execution environment, as the host sees it (implements ``base.Sandbox``).

Life: ``forked`` (PID 1 exists in its namespaces and cgroups and waits for a spec; this is what the
pool holds) -> ``running`` (PID 1 became the runtime) -> ``dead`` (kill() done, cgroups removed).
A pre-started environment (node) goes ``forked`` -> ``ready`` (its runtime process, PID 1's only
child, is started and waits for the function) -> ``running``; PID 1 stays a minimal init that
reports the runtime's wait status over the control socket before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from .base import ExitStatus
from .cgroups import SandboxCgroup
from .errors import SandboxStartError
from .procfiles import KeptFile, field_kb
from .rootfs import SANDBOX_GID, SANDBOX_UID
from .uids import UidLease
from .zygotes import UNKNOWN_STATUS, Zygote, recv_msg, wait_readable

KILL_TIMEOUT = 5.0


class LinuxSandbox:
    def __init__(
        self, sandbox_id: str, zygote: Zygote, cgroup: SandboxCgroup, ctl: socket.socket, out: int
    ) -> None:
        self._id = sandbox_id
        self.zygote = zygote
        self.cgroup = cgroup
        self._ctl: socket.socket | None = ctl
        self._out = out
        self._pid = 0
        self._listener: socket.socket | None = None
        self._exit: asyncio.Future[int] | None = None
        self._reading = False
        self._out_closed = False
        self._killed = False
        self._last_oom = 0
        self._kept_files: dict[str, KeptFile] = {}
        self._runtime_pid = 0  # host pid of the pre-started runtime process (PID 1's child)
        self._runtime_status: int | None = None
        self.prestarted = False
        self.state = "forking"
        self._lease: UidLease | None = None  # this sandbox's own host uid, if it has one
        self.network: Any = None  # its egress lease (sandbox/network), if it has one
        self.on_dead: Callable[[], Awaitable[None]] | None = None  # once, after kill()

    def own_lease(self, lease: UidLease) -> None:
        """Release ``lease`` once this sandbox is dead (see ``kill``)."""
        self._lease = lease

    def give_lease(self) -> UidLease | None:
        """Hand this sandbox's host uid to its environment, which keeps it across resets."""
        lease, self._lease = self._lease, None
        return lease

    # -- creation (used by the factory) ---------------------------------------------------------

    async def await_forked(self) -> None:
        assert self._ctl is not None
        msg, fds = await recv_msg(self._ctl, 1)
        if not msg or msg.get("t") != "forked" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            detail = msg.get("message", "") if msg else "the environment died while forking"
            raise SandboxStartError("Sandbox.Failure", f"sandbox fork failed: {detail}")
        self._pid = int(msg["pid"])
        # A pooled environment's PID 1 is an init; the runtime is its child (see _init in
        # _brazier_child.py), and PID 1 sends the runtime's wait status before it exits.
        self._runtime_pid = int(msg.get("runtime_pid") or 0)
        self._listener = socket.socket(fileno=fds[0])
        self._listener.setblocking(False)
        self._exit = self.zygote.exit_future(self._pid)
        self.state = "forked"

    async def prestart(self, plan: dict[str, Any]) -> None:
        """Have PID 1 build the function-independent filesystem and start the runtime process in
        wait mode; return once it is ready for ``launch``. Raises SandboxStartError."""
        assert self._ctl is not None
        socket.send_fds(self._ctl, [json.dumps(plan).encode()], [])
        msg, _ = await recv_msg(self._ctl)
        if not msg or msg.get("t") != "ready":
            detail = msg.get("message", "") if msg else "the environment died while pre-starting"
            raise SandboxStartError("Sandbox.Failure", f"sandbox pre-start failed: {detail}")
        self._runtime_pid = self._only_child_pid()
        self.prestarted = True
        self.state = "ready"

    def _only_child_pid(self) -> int:
        """The one process of the cgroup besides PID 1 (0 if not exactly one): read once, when
        only PID 1 and the runtime process exist in it."""
        try:
            with open(self.cgroup.procs_files()[0]) as f:
                pids = [int(p) for p in f.read().split() if int(p) != self._pid]
        except (OSError, ValueError):
            return 0
        return pids[0] if len(pids) == 1 else 0

    def _on_exit(self, fut: asyncio.Future[int]) -> None:
        """PID 1 of a pre-started environment sent its runtime's wait status just before it
        exited: read it now, before anything can close the control socket."""
        if self._ctl is None:
            return
        with contextlib.suppress(OSError, ValueError):
            data = self._ctl.recv(1 << 12)
            msg = json.loads(data) if data else None
            if isinstance(msg, dict) and msg.get("t") == "exit":
                self._runtime_status = int(msg["status"])

    def alive(self) -> bool:
        return self._exit is not None and not self._exit.done() and not self._killed

    async def launch(self, plan: dict[str, Any], fds: list[int]) -> None:
        """Send the spec (and its mount-tree fds); return once the runtime process runs.

        Raises SandboxStartError. Not idempotent: call once, on a ``forked`` sandbox.
        """
        assert self._ctl is not None
        socket.send_fds(self._ctl, [json.dumps(plan).encode()], fds)
        execing = False
        while True:
            msg, _ = await recv_msg(self._ctl)
            if msg is None:
                if execing:
                    break
                raise SandboxStartError("Sandbox.Failure", "sandbox PID 1 died during init")
            if msg["t"] == "running":
                break
            if msg["t"] == "exec":
                execing = True
            elif msg["t"] == "map":
                self._map_user_namespace(plan.get("ids", {}))
            elif msg["t"] == "exit":  # the runtime ended at once; PID 1 exits next
                self._runtime_status = int(msg["status"])
                break
            elif msg["t"] == "error":
                raise SandboxStartError(msg["code"], msg["message"])
        if (self.prestarted or self._runtime_pid) and self._exit is not None:
            self._exit.add_done_callback(self._on_exit)  # the ctl socket stays open for it
        else:
            self._ctl.close()
            self._ctl = None
        self.state = "running"

    def _map_user_namespace(self, ids: dict[str, int]) -> None:
        """The runtime process has unshared a user namespace: map the sandbox user (993/990)
        there to the environment's host ids, and root to root (so that root's files show as
        root's; nothing in it is root). Answers ``mapped``, or ``unmapped`` on failure."""
        assert self._ctl is not None
        answer = "unmapped"
        if self._runtime_pid and "host_uid" in ids:
            maps = (
                ("uid_map", SANDBOX_UID, ids["host_uid"]),
                ("gid_map", SANDBOX_GID, ids["host_gid"]),
            )
            try:
                for name, inner, outer in maps:
                    # SAFETY: the user namespace the sandbox's runtime process just made for
                    # itself (its host pid, reported at fork, is alive: it is asking); the
                    # host ids are the environment's own lease.
                    with open(f"/proc/{self._runtime_pid}/{name}", "w") as f:
                        f.write(f"0 0 1\n{inner} {outer} 1\n")
                answer = "mapped"
            except OSError:
                pass
        self._ctl.send(json.dumps({"t": answer}).encode())

    # -- base.Sandbox ----------------------------------------------------------------------------

    @property
    def sandbox_id(self) -> str:
        return self._id

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def runtime_pid(self) -> int:
        """Host pid of the runtime process: PID 1, or its child in a pre-started environment."""
        return self._runtime_pid or self._pid

    @property
    def listener(self) -> socket.socket:
        assert self._listener is not None
        return self._listener

    @property
    def output_fd(self) -> int:
        return self._out

    async def read_output(self, max_bytes: int = 65536) -> bytes:
        self._reading = True
        try:
            while not self._out_closed:
                try:
                    data = os.read(self._out, max_bytes)
                except BlockingIOError:
                    await wait_readable(self._out)
                    continue
                if not data and self._killed:
                    self._close_output()
                return data
            return b""
        finally:
            self._reading = False

    async def wait(self) -> ExitStatus:
        assert self._exit is not None
        status = await asyncio.shield(self._exit)
        if self._runtime_status is not None:
            return ExitStatus.from_wait_status(self._runtime_status)
        if status == UNKNOWN_STATUS:
            return ExitStatus(None, None)
        return ExitStatus.from_wait_status(status)

    async def freeze(self) -> None:
        if not self._killed:
            await self.cgroup.freeze(True)

    async def thaw(self) -> None:
        if not self._killed:
            await self.cgroup.freeze(False)

    def _kept(self, path: str, flags: int) -> KeptFile:
        kept = self._kept_files.get(path)
        if kept is None:
            kept = self._kept_files[path] = KeptFile(path, flags)
        return kept

    def memory_peak_bytes(self) -> int:
        if self.cgroup.removed:
            return 0
        hwm = 0
        if self.alive():
            status = self._kept(f"/proc/{self.runtime_pid}/status", os.O_RDONLY).read()
            hwm = field_kb(status, b"VmHWM") * 1024
        return max(self.cgroup.memory_peak(at_least=hwm), hwm)

    def reset_memory_peak(self) -> None:
        if self.cgroup.removed:
            return
        self.cgroup.reset_memory_peak()
        if self.alive():
            # SAFETY: "5" to clear_refs resets only the peak RSS (VmHWM) of our own sandbox pid.
            self._kept(f"/proc/{self.runtime_pid}/clear_refs", os.O_WRONLY).write(b"5")

    def oom_killed(self) -> bool:
        if not self.cgroup.removed:
            self._last_oom = self.cgroup.oom_kills()
        return self._last_oom > 0

    def end_init_boost(self) -> None:
        self.cgroup.limit_cpu()

    def cpu_time_ns(self) -> int:
        return 0 if self.cgroup.removed else self.cgroup.cpu_time_ns()

    async def kill(self) -> None:
        if not self._killed:
            self._killed = True
            self.oom_killed()  # remember the count before the cgroup goes
            self.cgroup.kill()
            if self._exit is not None and not self._exit.done():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._pid, signal.SIGKILL)  # PID 1: the kernel kills its namespace
            if self._exit is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(KILL_TIMEOUT):
                        await asyncio.shield(self._exit)
            for s in (self._ctl, self._listener):
                if s is not None:
                    s.close()
            for kept in self._kept_files.values():
                kept.close()
            self._ctl = None
            self.state = "dead"
        if self._lease is not None and self._exit is not None and self._exit.done():
            self._lease.release()  # PID 1 is reaped: nothing runs as that uid any more
            self._lease = None
        await self.cgroup.remove()
        if self.on_dead is not None:
            on_dead, self.on_dead = self.on_dead, None
            await on_dead()
        if not self._reading:
            self._close_output()

    def _close_output(self) -> None:
        if not self._out_closed:
            self._out_closed = True
            os.close(self._out)
