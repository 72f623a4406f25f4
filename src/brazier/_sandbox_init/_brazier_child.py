"""One execution environment's PID 1, forked by the zygote (stdlib only, Python 3.9+).

The zygote forks B into a fresh pid namespace (it unshares CLONE_NEWPID for its next child just
before the fork), so B is PID 1 there. B joins the sandbox's cgroups, unshares the other
namespaces, reports itself and its Runtime API listener to the host over its own control socket
and waits for the spec (this is where pooled environments wait).

A pooled environment (the fork request carries its ``base``) does everything that does not depend
on the function before it reports: it builds the base filesystem and pivots into it (its
bounding and ambient capability sets are empty and its seccomp program built already, inherited
from the zygote: see ``load_privilege_drop``). On the spec it only attaches the code, layers and
/tmp trees, drops to the sandbox user, loads seccomp and becomes the runtime.

Control socket messages (JSON over SOCK_SEQPACKET), B -> host:
  {"t": "forked", "pid": <host pid>} + the listener fd; then after the spec, one of
  {"t": "running"} (python: about to call python_runtime.main),
  {"t": "exec", "path": ...} followed by EOF when execve succeeded (the fd is close-on-exec),
  {"t": "error", "code": "Runtime.InvalidEntrypoint" | "Sandbox.Failure", "message": ...}.
On an error B also writes the message to its output pipe and exits with 127 (no entrypoint) or 1.
A pre-started (node) environment (forked without ``base``) gets {"t": "prestart", ...} first and
answers {"t": "ready"}; its spec then yields {"t": "running"}, and {"t": "exit", "status": ...}
when the runtime ends (see ``_prestarted``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import traceback
from typing import Any

import _brazier_linux as L

# Unshared by B itself; its pid namespace is made by the zygote (see fork_b in zygote.py).
NAMESPACES = L.CLONE_NEWNS | L.CLONE_NEWIPC | L.CLONE_NEWUTS | L.CLONE_NEWNET | L.CLONE_NEWCGROUP
CTL_FD = 3


def _send(ctl: socket.socket, msg: dict[str, Any], fds: list[Any] | None = None) -> None:
    socket.send_fds(ctl, [json.dumps(msg).encode()], fds or [])


def run_b(req: dict[str, Any], ctl_fd: int, out_fd: int) -> None:
    """PID 1 of a new environment, just forked by the zygote: never returns."""
    code = 1
    ctl = None
    try:
        _enter_sandbox(req)
    except BaseException:
        refuse(ctl_fd, "environment setup failed: " + traceback.format_exc(limit=3))
        # SAFETY: PID 1 of its own namespace; exiting kills only this sandbox's processes.
        os._exit(1)
    try:
        host_pid = int(os.readlink("/proc/self"))  # still the host's /proc
        ctl = _own_fds(ctl_fd, out_fd)
        socket.sethostname(req.get("hostname", "localhost"))
        L.loopback_up()
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", 9001))
        lst.listen(128)
        base = req.get("base")
        if base is not None:
            _build_base(base)
            _pivot(base["root"])
            seccomp = _prepare_drop(base)
        _send(ctl, {"t": "forked", "pid": host_pid}, [lst.fileno()])
        lst.close()  # only the host keeps the listener: nothing inside can accept on it
        data, tree_fds, _, _ = socket.recv_fds(ctl, 1 << 20, 8)
        if not data:  # the host discarded this pooled environment
            code = 0
            return
        spec = json.loads(data)
        if base is None:
            if spec.get("t") != "prestart":
                raise RuntimeError(f"an environment without a base got {spec.get('t')!r}")
            code = _prestarted(ctl, spec)
            return
        _attach_trees("", spec, tree_fds)
        _finish_drop(base, seccomp)
        code = _become_runtime(ctl, spec)
    except BaseException:
        msg = "sandbox init failed: " + traceback.format_exc(limit=4)
        _report(ctl, "Sandbox.Failure", msg)
    finally:
        # SAFETY: PID 1 of its own namespace; exiting kills only this sandbox's processes.
        os._exit(code)


def refuse(ctl_fd: int, message: str) -> None:
    """Report, on an environment's control socket, that it could not be set up (the zygote uses
    it when it cannot even fork one)."""
    try:
        with socket.socket(fileno=os.dup(ctl_fd)) as ctl:
            _send(ctl, {"t": "error", "code": "Sandbox.Failure", "message": message})
    except OSError:
        pass


def _own_fds(ctl_fd: int, out_fd: int) -> socket.socket:
    """stdin from /dev/null, stdout and stderr to the output pipe, the control socket at CTL_FD,
    and nothing else inherited from the zygote. Returns the control socket."""
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.dup2(ctl_fd, CTL_FD, inheritable=False)
    for fd in [int(n) for n in os.listdir("/proc/self/fd")]:
        if fd > CTL_FD:  # the zygote's sockets and every other inherited fd
            with contextlib.suppress(OSError):  # the fd of the listdir itself
                os.close(fd)
    return socket.socket(fileno=CTL_FD)


# Should the host run out of memory (every function's limit is honoured, but their sum can exceed
# the machine), its OOM killer takes a sandbox before the server or the host's own daemons.
# Lowering it again needs CAP_SYS_RESOURCE, which no sandbox process keeps.
OOM_SCORE_ADJ = 500


def _enter_sandbox(req: dict[str, Any]) -> None:
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # SAFETY: our own oom_score_adj, raised (never lowered), inherited by the sandbox's processes.
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write(str(OOM_SCORE_ADJ))
    for procs in req["procs"]:
        # SAFETY: cgroup write ("0": the writer) from a fresh single-threaded fork, before the
        # cgroup namespace is unshared; the host created these cgroups for this environment alone.
        with open(procs, "w") as f:
            f.write("0")
    # SAFETY: B is single-threaded (a fresh fork of the single-threaded zygote); unshare moves
    # only B (and its future children) into new namespaces, never the zygote.
    L.unshare(NAMESPACES)


def _report(ctl: socket.socket | None, code: str, message: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, (message.rstrip("\n") + "\n").encode())
    if ctl is not None:
        with contextlib.suppress(OSError):
            _send(ctl, {"t": "error", "code": code, "message": message})


def _ro_bind(src: str, dst: str, ro: bool) -> None:
    # SAFETY: inside B's private mount namespace (made rprivate first), so nothing propagates back.
    L.mount(src, dst, None, L.MS_BIND, None)
    flags = L.MS_BIND | L.MS_REMOUNT | L.MS_NOSUID | L.MS_NODEV | (L.MS_RDONLY if ro else 0)
    L.mount(None, dst, None, flags, None)


def _attach_trees(root: str, spec: dict[str, Any], tree_fds: list[Any]) -> None:
    # Spec-time directories come as detached mount trees (fds), because this mount namespace was
    # copied when the environment was pre-forked: later host mounts (a /tmp tmpfs) are not in it.
    for index, dst, ro in spec["trees"]:
        # SAFETY: B's private mount ns (rprivate); the tree is an anonymous clone the host made
        # of this environment's own code, layers or /tmp, attached on an empty mount point.
        L.attach_mount(tree_fds[index], root + dst)
        flags = L.MS_BIND | L.MS_REMOUNT | L.MS_NOSUID | L.MS_NODEV | (L.MS_RDONLY if ro else 0)
        L.mount(None, root + dst, None, flags, None)
    for fd in tree_fds:
        os.close(fd)
    if spec["tmp_size_mb"]:
        opts = "size={}m,mode=1777".format(spec["tmp_size_mb"])
        # SAFETY: a fresh tmpfs on the sandbox's own /tmp mount point, in B's private mount ns.
        L.mount("tmpfs", root + "/tmp", "tmpfs", L.MS_NOSUID | L.MS_NODEV, opts)  # noqa: S108


def _build_base(spec: dict[str, Any]) -> None:
    """Everything of the filesystem that does not depend on the function (no trees, no /tmp)."""
    root = spec["root"]
    # SAFETY: private mount ns of B; stop propagation to and from the host before any mount.
    L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE, None)
    L.mount(root, root, None, L.MS_BIND, None)  # a mount point, as pivot_root needs
    for src, dst, ro in spec["binds"]:
        _ro_bind(src, root + dst, ro)
    # SAFETY: B is PID 1 of its pid ns, so this proc shows only the sandbox's processes.
    L.mount("proc", root + "/proc", "proc", L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC, "hidepid=2")
    dev = root + "/dev"
    L.mount("tmpfs", dev, "tmpfs", L.MS_NOSUID | L.MS_NOEXEC, "size=64k,mode=755")
    for name, minor in (("null", 3), ("zero", 5), ("full", 7), ("random", 8), ("urandom", 9)):
        os.mknod(dev + "/" + name, 0o20666, os.makedev(1, minor))
        os.chmod(dev + "/" + name, 0o666)  # noqa: S103 - these device nodes are world-usable
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(target, dev + "/" + name)
    os.mkdir(dev + "/shm")
    shm = "size={}m,mode=1777".format(spec["shm_mb"])
    L.mount("tmpfs", dev + "/shm", "tmpfs", L.MS_NOSUID | L.MS_NODEV, shm)


def _pivot(root: str) -> None:
    os.chdir(root)
    # SAFETY: new root is a mount point in a private ns; the old root is stacked on "." and
    # detached at once, so no host path stays reachable.
    L.pivot_root(".", ".")
    L.umount2(".", L.MNT_DETACH)
    os.chdir("/")
    L.mount(None, "/", None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_NOSUID, None)


def _prepare_drop(spec: dict[str, Any]) -> L.SeccompProgram:
    """The part of the privilege drop that can precede the spec: the file limit. (The bounding
    and ambient capability sets are already empty and the seccomp program is built: both are
    the zygote's, inherited; see ``load_privilege_drop``.)"""
    import resource

    nofile = spec["nofile"]
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    program = SECCOMP[0]
    if program is None:
        raise RuntimeError("no seccomp filter loaded in the zygote")
    return program


def _finish_drop(spec: dict[str, Any], seccomp: L.SeccompProgram) -> None:
    os.setgroups([])
    os.setresgid(spec["gid"], spec["gid"], spec["gid"])
    os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    L.capset_zero()  # the inheritable set survives setuid; empty it too
    # SAFETY: no_new_privs first, so the filter is allowed without CAP_SYS_ADMIN and no exec can
    # regain privileges; the filter is the last privileged step.
    L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
    seccomp.install()
    os.umask(0o022)


def _drop_privileges(spec: dict[str, Any]) -> None:
    _finish_drop(spec, _prepare_drop(spec))


WAIT_FD = 3  # the pre-started runtime's end of its socket to B (see _prestarted)


def _prestarted(ctl: socket.socket, base: dict[str, Any]) -> int:
    """A pooled environment whose runtime (node) is started before the function is known.

    B builds the function-independent filesystem and pivots into it, then forks C, which drops
    every privilege and execs the runtime in wait mode (``_BRAZIER_WAIT_FD``): the runtime loads
    itself, writes ``ready`` on its socket and blocks on it. B reports ``ready`` to the host and
    waits for the spec (or C's death, which ends the environment). On the spec B attaches the
    code, layers and /tmp trees, sends C one line ``{"env": ..., "handler": ...}``, reports
    ``running``, drops its own privileges and stays PID 1: it reaps orphans and, when C ends,
    sends C's wait status to the host (``{"t": "exit", "status": ...}``) and exits.
    """
    import select

    _build_base(base)
    _pivot(base["root"])
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # SAFETY: B is single-threaded; C only runs _exec_waiting_runtime, which ends in exec or _exit.
    child = os.fork()
    if child == 0:
        _exec_waiting_runtime(base, theirs.fileno())
    theirs.close()
    # PID 1 ignores signals it has no handler for from inside its namespace: drop Python's
    # SIGINT handler so that nothing in the sandbox can make B raise KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    got = b""
    while not got.endswith(b"\n"):
        chunk = mine.recv(64)
        if not chunk:
            _report(ctl, "Sandbox.Failure", "the runtime exited before it was ready")
            return 1
        got += chunk
    _send(ctl, {"t": "ready"})
    while True:
        ready, _, _ = select.select([ctl.fileno(), mine.fileno()], [], [])
        if mine.fileno() in ready:  # C died (or spoke out of turn) while pooled
            return 1
        if ctl.fileno() in ready:
            break
    data, tree_fds, _, _ = socket.recv_fds(ctl, 1 << 20, 8)
    if not data:  # the host discarded this pooled environment
        return 0
    spec = json.loads(data)
    _attach_trees("", spec, tree_fds)
    # B keeps nothing privileged to do: drop everything before the function's code can run.
    _drop_privileges(base)
    go = {"env": spec["env"], "handler": spec["handler"], "cwd": "/var/task"}
    mine.sendall((json.dumps(go) + "\n").encode())
    mine.close()
    _send(ctl, {"t": "running"})
    while True:
        pid, status = os.waitpid(-1, 0)  # every orphan of the sandbox is ours to reap
        if pid == child:
            break
    with contextlib.suppress(OSError):
        _send(ctl, {"t": "exit", "status": status})
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _exec_waiting_runtime(base: dict[str, Any], sock_fd: int) -> None:
    """C: never returns."""
    try:
        os.dup2(sock_fd, WAIT_FD)  # over B's control socket (close-on-exec anyway)
        _drop_privileges(base)
        os.chdir("/")  # /var/task is still an empty mount point: nothing to look at before go
        ex = base["exec"]
        env = dict(base["env"])
        env["_BRAZIER_WAIT_FD"] = str(WAIT_FD)
        os.execve(ex["path"], [ex["path"], *ex["args"]], env)  # noqa: S606 - the runtime
    except BaseException:
        with contextlib.suppress(OSError):
            os.write(2, ("runtime start failed: " + traceback.format_exc(limit=3)).encode())
    finally:
        # SAFETY: C is a fork of B; _exit skips B's inherited finalizers and flushes nothing.
        os._exit(127)


SECCOMP: list[L.SeccompProgram | None] = [None]  # the zygote's, see load_privilege_drop


def load_privilege_drop(bpf: bytes) -> None:
    """The zygote's part of every environment's privilege drop, done once and inherited by each
    fork: the seccomp program (from the host-built BPF) ready to install, and empty bounding and
    ambient capability sets. A bounding set limits only what an execve can grant, so the zygote
    keeps its own (effective, permitted) capabilities for building environments; its children
    drop those when they change uid (``_finish_drop``). Done per environment, these were ~0.35
    ms of CPU on every start."""
    # SAFETY: the zygote is root with CAP_SETPCAP; emptying its bounding set only narrows what
    # any of its descendants could ever gain through an execve.
    L.clear_capabilities(L.cap_last_cap())
    SECCOMP[0] = L.SeccompProgram(bpf) if bpf else None


def set_environ(env: dict[str, str]) -> None:
    """Make ``env`` the whole process environment (``os.environ`` and the C ``environ``)."""
    os.environ.clear()
    os.environ.update(env)


def _become_runtime(ctl: socket.socket, spec: dict[str, Any]) -> int:
    os.chdir("/var/task")
    env = dict(spec["env"])
    if spec["mode"] == "exec":
        ex = spec["exec"]
        path = next((p for p in ex["candidates"] if os.access(p, os.X_OK)), None)
        if path is None:
            tried = " or ".join(ex["candidates"])
            _report(ctl, "Runtime.InvalidEntrypoint", "Couldn't find valid bootstrap(s): " + tried)
            return 127
        _send(ctl, {"t": "exec", "path": path})
        try:
            os.execve(path, [path, *ex["args"]], env)  # noqa: S606 - the runtime, by design
        except OSError as e:
            _report(ctl, "Runtime.InvalidEntrypoint", f"exec {path} failed: {e}")
            return 127
    set_environ(env)
    # The zygote's path finders stay cached: they cover the interpreter's own directories, which
    # are the same inside (bind-mounted at their host paths); new entries (/var/task, /opt/...)
    # get fresh finders on first use. Clearing them would free objects shared with the zygote,
    # copying ~350 KiB of its pages into every environment.
    sys.path[:] = spec["sys_path"]
    sys.argv[:] = ["/var/runtime/bootstrap", spec["handler"]]
    try:
        import python_runtime
    except ImportError as e:
        _report(ctl, "Runtime.InvalidEntrypoint", f"python_runtime is not available: {e}")
        return 127
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    _send(ctl, {"t": "running"})
    ctl.close()
    try:
        python_runtime.main(spec["handler"])
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # the runtime crashed: its traceback goes to the function's log
        traceback.print_exc()
        return 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    return 0
