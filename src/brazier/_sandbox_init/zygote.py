"""The zygote: a warm interpreter that forks execution environments (stdlib only, Python 3.9+).

Started by the host as ``python3.X -I -S -B zygote.py <control fd> <seccomp bpf file>``. It
pre-imports what the Lambda runtime client needs (and ``python_runtime`` when present), then
serves fork requests from the host on the control socket (JSON over SOCK_SEQPACKET):

  host -> zygote  {"op": "fork", "procs": [cgroup.procs paths...], "hostname": ..., "base": ...}
                  + fds [the environment's control socket, the write end of its output pipe]
  zygote -> host  {"t": "hello", "pid": ..., "python": "3.X.Y", "python_runtime": bool}
                  {"t": "exit", "pid": <host pid of a sandbox PID 1>, "status": <wait status>}

Each sandbox PID 1 (B) is the zygote's own child, forked into a fresh pid namespace (fork_b),
and reaped here; its wait status goes to the host (orphans inside a sandbox go to its PID 1).
Tenant code never runs or gets imported here: ``/var/task`` exists only inside the sandboxes. EOF
on the control socket ends the zygote.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import socket
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import base64  # noqa: F401 - pre-imported so forked runtimes start warm
import datetime  # noqa: F401
import decimal  # noqa: F401
import http.client  # noqa: F401
import importlib
import importlib.util  # noqa: F401
import json
import logging  # noqa: F401
import resource  # noqa: F401
import traceback
import urllib.error
import urllib.parse
import urllib.request  # noqa: F401
import uuid  # noqa: F401

import _brazier_child
import _brazier_linux


def _preimport_runtime() -> bool:
    try:
        import python_runtime  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != "python_runtime":
            raise
        return False
    return True


def _rehearse_environ(rounds: int = 20) -> None:
    """Warm up ``set_environ`` as ``python_runtime.rehearse`` warms up the invoke path."""
    saved = dict(os.environ)
    dummy = {f"_BRAZIER_REHEARSAL_{i}": "x" for i in range(24)}
    for _ in range(rounds):
        _brazier_child.set_environ(dummy)
    _brazier_child.set_environ(saved)


def _free_blocks() -> dict[int, int]:
    """pymalloc's free blocks per block size, from ``sys._debugmallocstats()`` (to stderr)."""
    r, w = os.pipe()
    saved = os.dup(2)
    os.dup2(w, 2)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    free: dict[int, int] = {}
    # "class   size   num pools   blocks in use  avail blocks", the same from 3.9 to 3.13
    for line in b"".join(chunks).decode("ascii", "replace").splitlines():
        cols = line.split()
        if len(cols) == 5 and all(c.isdigit() for c in cols):
            free[int(cols[1])] = int(cols[4])
    return free


_FILLERS: list[object] = []  # kept for the zygote's lifetime; no environment ever touches them


def _fill_allocator_holes() -> None:
    """Occupy every free block of pymalloc's pools, just before the zygote starts forking.

    A forked environment's small allocations go to the first pool of their size class with room.
    When that pool is a partly used one inherited from the zygote, the first write copies its
    page, so the environment's allocations end up scattered over copied pages. With every
    inherited pool full, they go to fresh pools instead, packed into pages of their own. The
    fillers are objects of exactly each block size that nothing else references (16 bytes:
    ``object()``; 32: a float; larger: a bytes object of ``size - 33`` bytes). A few passes,
    because the fillers' own list grows.
    """
    for _ in range(3):
        for size, count in _free_blocks().items():
            if size == 16:
                _FILLERS.extend(object() for _ in range(count))
            elif size == 32:
                _FILLERS.extend(float(i) + 0.5 for i in range(count))
            else:
                _FILLERS.extend(bytes(size - 33) for _ in range(count))


def main() -> None:
    ctl = socket.socket(fileno=int(sys.argv[1]))
    with open(sys.argv[2], "rb") as f:
        _brazier_child.load_privilege_drop(f.read())
    has_runtime = _preimport_runtime()
    try:  # memory savings for every environment (see python_runtime.rehearse); never fatal
        if has_runtime:
            import python_runtime

            python_runtime.rehearse()
        _rehearse_environ()
        gc.collect()  # the rehearsals' garbage, before the holes are filled
        _fill_allocator_holes()
    except Exception:
        traceback.print_exc()
    # Every object so far is the zygote's: a collection in an environment need not visit (and so
    # copy) any of them. With a handler that calls gc.collect(), an idle python3.11 environment
    # holds 3.1 MiB of private memory with this, 6.4 MiB without.
    gc.freeze()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    version = "{}.{}.{}".format(*sys.version_info[:3])
    hello = {
        "t": "hello",
        "pid": os.getpid(),
        "python": version,
        "python_runtime": has_runtime,
        "stdlib_path": sys.path[1:],  # -I -S: just the zip, the stdlib and lib-dynload
    }
    ctl.send(json.dumps(hello).encode())
    # Our own pid namespace, to return to before each fork (see fork_b).
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    # poll, not select: the control socket keeps the number it had in the server, which may be
    # above select's 1024 (a zygote started during a burst, with thousands of connections open).
    poller = select.poll()
    poller.register(ctl.fileno(), select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if wake_r in ready:
            _reap(ctl, wake_r)
        if ctl.fileno() in ready:
            data, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 4)
            if not data:
                return
            req = json.loads(data)
            if req.get("op") == "fork" and len(fds) == 2:
                try:
                    fork_b(own_pid_ns, ctl, req, fds[0], fds[1])
                except OSError as e:  # no fork, no pid namespace: that environment fails, not us
                    _brazier_child.refuse(fds[0], f"environment setup failed: {e}")
            for fd in fds:
                os.close(fd)


def fork_b(
    own_pid_ns: int, ctl: socket.socket, req: dict[str, Any], ctl_fd: int, out_fd: int
) -> None:
    """Fork an environment's PID 1 in a pid namespace of its own: one fork, where an unshare in
    the child would need a second one (unshare(CLONE_NEWPID) moves only the caller's children)."""
    # SAFETY: these change only which pid namespace the zygote's *next child* starts in: back to
    # our own (unshare refuses otherwise), then a fresh one. The zygote itself never moves.
    _brazier_linux.setns(own_pid_ns, _brazier_linux.CLONE_NEWPID)
    _brazier_linux.unshare(_brazier_linux.CLONE_NEWPID)
    # SAFETY: the zygote is single-threaded, so fork copies a consistent interpreter; the child
    # only runs run_b, which ends in os._exit. The zygote reaps it (see _reap).
    if os.fork() == 0:
        ctl.close()
        _brazier_child.run_b(req, ctl_fd, out_fd)


def _reap(ctl: socket.socket, wake_r: int) -> None:
    try:
        while os.read(wake_r, 512):
            pass
    except BlockingIOError:
        pass
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        ctl.send(json.dumps({"t": "exit", "pid": pid, "status": status}).encode())


if __name__ == "__main__":
    main()
