"""Host side of a zygote process and of the per-environment control sockets.

One zygote per interpreter (see ``_sandbox_init/zygote.py`` for the wire protocol). The host talks
to it over a SOCK_SEQPACKET socketpair: message boundaries and SCM_RIGHTS fd passing for free.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
from pathlib import Path
from typing import Any

from .discovery import Interpreter
from .errors import SandboxUnavailable

ZYGOTE_START_TIMEOUT = 30.0
UNKNOWN_STATUS = -1  # the zygote went away before it could report a wait status


async def wait_readable(fd: int) -> None:
    """Wait until ``fd`` is readable (or at EOF), without a thread."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await fut
    finally:
        loop.remove_reader(fd)


async def recv_msg(sock: socket.socket, maxfds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """Receive one JSON message (None at EOF) and any fds from a non-blocking socket."""
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, maxfds)
        except BlockingIOError:
            await wait_readable(sock.fileno())
            continue
        except ConnectionResetError:
            return None, []
        return (json.loads(data) if data else None), fds


class Zygote:
    """A running zygote. ``close`` is idempotent; after it, ``fork`` raises SandboxUnavailable."""

    def __init__(self, interpreter: Interpreter, init_dir: Path, bpf_path: Path) -> None:
        self.interpreter = interpreter
        self._init_dir = init_dir
        self._bpf_path = bpf_path
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._early: dict[int, int] = {}
        # Fork requests queue in the socket's send buffer while the zygote forks; when it is
        # full, one sender at a time waits for room (a descriptor has one writer callback).
        self._send_lock = asyncio.Lock()
        self._writable: asyncio.Future[None] | None = None
        self.hello: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc else 0

    @property
    def alive(self) -> bool:
        """False once its control socket saw EOF (it died, or was closed)."""
        return self._sock is not None

    async def start(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [str(self.interpreter.path), "-I", "-S", "-B", str(self._init_dir / "zygote.py")]
        try:
            self._proc = subprocess.Popen(  # noqa: ASYNC220 - fork+exec, no waiting
                [*argv, str(theirs.fileno()), str(self._bpf_path)],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                cwd="/",
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                start_new_session=True,  # a terminal's Ctrl-C is for the server, not for it
            )
        except OSError as e:
            mine.close()
            raise SandboxUnavailable(f"cannot start zygote {self.interpreter.path}: {e}") from e
        finally:
            theirs.close()
        mine.setblocking(False)
        self._sock = mine
        try:
            async with asyncio.timeout(ZYGOTE_START_TIMEOUT):
                hello, _ = await recv_msg(mine)
        except TimeoutError:
            hello = None
        except asyncio.CancelledError:
            # The server is stopping while this zygote boots: end it now, before the factory
            # removes the files it is about to read (it would print a traceback).
            self._detach()
            proc, self._proc = self._proc, None
            if proc is not None:
                proc.kill()
                proc.wait()
            raise
        if not hello or hello.get("t") != "hello":
            await self.close()
            raise SandboxUnavailable(f"zygote {self.interpreter.path} failed to start")
        self.hello = hello
        asyncio.get_running_loop().add_reader(mine.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # the zygote died: nobody will report these exits any more
                self._detach()
                return
            msg = json.loads(data)
            if msg.get("t") == "exit":
                fut = self._exits.pop(msg["pid"], None)
                if fut is None:
                    self._early[msg["pid"]] = msg["status"]
                elif not fut.done():
                    fut.set_result(msg["status"])

    def exit_future(self, pid: int) -> asyncio.Future[int]:
        """A future for the wait status of sandbox PID 1 ``pid`` (a host pid)."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if pid in self._early:
            fut.set_result(self._early.pop(pid))
        elif self._sock is None:
            fut.set_result(UNKNOWN_STATUS)
        else:
            self._exits[pid] = fut
        return fut

    async def fork(
        self, procs: list[str], ctl_fd: int, out_fd: int, base: dict[str, Any] | None = None
    ) -> None:
        """Ask for an environment. With ``base`` (root, binds, shm_mb, uid, gid, nofile) it builds
        that filesystem and pivots into it before it reports ``forked``; without, it waits for a
        pre-start plan (see ``_brazier_child``). Waits while the zygote's queue is full (a burst
        of cold starts): EAGAIN is back-pressure, not death. Raises SandboxUnavailable."""
        msg = {"op": "fork", "procs": procs, "hostname": "localhost", "base": base}
        req = json.dumps(msg).encode()
        async with self._send_lock:
            while True:
                sock = self._sock
                if sock is None:
                    raise SandboxUnavailable(f"the zygote of {self.interpreter.path} is gone")
                try:
                    # SAFETY: SEQPACKET send of one small message; the zygote owns the fork.
                    socket.send_fds(sock, [req], [ctl_fd, out_fd])
                    return
                except BlockingIOError:
                    pass  # its queue is full: wait for room below
                except OSError as e:
                    raise SandboxUnavailable(f"zygote {self.interpreter.path} is gone: {e}") from e
                await self._until_writable(sock)

    async def _until_writable(self, sock: socket.socket) -> None:
        """Wait until ``sock`` has room, or the zygote is detached (``_detach`` wakes us)."""
        loop = asyncio.get_running_loop()
        fut = self._writable = loop.create_future()
        loop.add_writer(sock.fileno(), self._on_writable)
        try:
            await fut
        finally:
            self._writable = None
            if self._sock is sock:
                loop.remove_writer(sock.fileno())

    def _on_writable(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _detach(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
                asyncio.get_running_loop().remove_writer(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for fut in self._exits.values():
            if not fut.done():
                fut.set_result(UNKNOWN_STATUS)
        self._exits.clear()
        self._on_writable()  # a sender waiting for room finds the zygote gone

    async def close(self) -> None:
        self._detach()  # EOF makes the zygote exit
        proc, self._proc = self._proc, None
        if proc is not None:
            for _ in range(200):
                if proc.poll() is not None:
                    return
                await asyncio.sleep(0.005)
            proc.kill()
            while proc.poll() is None:  # noqa: ASYNC110 - a child of ours, dying of SIGKILL
                await asyncio.sleep(0.005)
