"""The zygote: a warm interpreter that forks execution environments (stdlib only, Python 3.9+).

Started by the host as ``python3.X -I -S -B zygote.py <control fd> <seccomp bpf file>``. It
pre-imports what the Lambda runtime client needs (and ``python_runtime`` when present), then
serves fork requests from the host on the control socket (JSON over SOCK_SEQPACKET):

  host -> zygote  {"op": "fork", "procs": [cgroup.procs paths...], "hostname": ...}
                  + fds [the environment's control socket, the write end of its output pipe]
  zygote -> host  {"t": "hello", "pid": ..., "python": "3.X.Y", "python_runtime": bool}
                  {"t": "exit", "pid": <host pid of a sandbox PID 1>, "status": <wait status>}

The zygote is a child subreaper, so every sandbox PID 1 (the grandchild B) is re-parented to it
and reaped here; its wait status goes to the host. Tenant code never runs or gets imported here:
``/var/task`` exists only inside the sandboxes. EOF on the control socket ends the zygote.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys

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
import traceback  # noqa: F401
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


def main() -> None:
    ctl = socket.socket(fileno=int(sys.argv[1]))
    with open(sys.argv[2], "rb") as f:
        _brazier_child.SECCOMP[0] = f.read()
    has_runtime = _preimport_runtime()
    # SAFETY: makes every orphaned sandbox PID 1 our child, so we can reap it and report status.
    _brazier_linux.prctl(_brazier_linux.PR_SET_CHILD_SUBREAPER, 1)
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
    forks_a: set[int] = set()
    while True:
        ready, _, _ = select.select([ctl.fileno(), wake_r], [], [])
        if wake_r in ready:
            _reap(ctl, forks_a, wake_r)
        if ctl.fileno() in ready:
            data, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 4)
            if not data:
                return
            req = json.loads(data)
            if req.get("op") == "fork" and len(fds) == 2:
                # SAFETY: the zygote is single-threaded, so fork copies a consistent interpreter;
                # the child only runs run_a, which ends in os._exit.
                pid = os.fork()
                if pid == 0:
                    ctl.close()
                    _brazier_child.run_a(req, fds[0], fds[1])
                forks_a.add(pid)
            for fd in fds:
                os.close(fd)


def _reap(ctl: socket.socket, forks_a: set[int], wake_r: int) -> None:
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
        if pid in forks_a:
            forks_a.discard(pid)
        else:
            ctl.send(json.dumps({"t": "exit", "pid": pid, "status": status}).encode())


if __name__ == "__main__":
    main()
