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
from collections.abc import Callable
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
        base = req.get("base")
        init = None
        if base is not None:  # B stays PID 1 as the environment's init; C goes on
            # As early as possible: every page B writes before this fork that C writes after
            # it ends up in both (B kept 1.4 MiB of private memory when it forked C later).
            init = _split_init(ctl, base.get("init"))
        runtime_pid = int(os.readlink("/proc/self")) if init is not None else 0
        socket.sethostname(req.get("hostname", "localhost"))
        L.loopback_up()
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", 9001))
        lst.listen(128)
        if base is not None:
            _build_base(base)
            _pivot(base["root"])
            seccomp = _prepare_drop(base)
        _send(ctl, {"t": "forked", "pid": host_pid, "runtime_pid": runtime_pid}, [lst.fileno()])
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
        assert init is not None
        _finish_drop({**base, **spec.get("ids", {})}, seccomp, _map_by(ctl, {"t": "map"}))
        code = _become_runtime(ctl, spec, init)
    except BaseException:
        msg = "sandbox init failed: " + traceback.format_exc(limit=4)
        _report(ctl, "Sandbox.Failure", msg)
    finally:
        # SAFETY: PID 1 of its own namespace; exiting kills only this sandbox's processes.
        os._exit(code)


def _split_init(ctl: socket.socket, init_path: str | None) -> socket.socket:
    """Fork C, which goes on to become the runtime (and returns here, with its end of a socket
    to B); B stays PID 1 as the environment's init and never returns: it execs ``init_path``
    (brazier_init.c, opened before the fork: C may pivot away from the host's paths at once),
    or runs ``_init`` when there is none."""
    init_fd = -1
    if init_path:
        with contextlib.suppress(OSError):
            init_fd = os.open(init_path, os.O_RDONLY | os.O_CLOEXEC)
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)  # close-on-exec
    # SAFETY: B is single-threaded; C continues run_b, which ends in exec or os._exit.
    child = os.fork()
    if child:
        theirs.close()
        # PID 1 has nothing privileged left to do (the host maps C's user namespace).
        _drop_host(NOBODY, NOBODY)
        if init_fd >= 0:
            os.set_inheritable(ctl.fileno(), True)
            os.set_inheritable(mine.fileno(), True)
            args = ["brazier-init", str(child), str(ctl.fileno()), str(mine.fileno())]
            with contextlib.suppress(OSError):
                # SAFETY: the host's own init binary, by fd, run unprivileged (see _drop_host).
                os.execve(init_fd, args, {})  # noqa: S606 - our init, by design
        _init(ctl, child, mine)
    if init_fd >= 0:
        os.close(init_fd)
    mine.close()
    return theirs


NOBODY = 65534  # the host ids of a pooled environment's PID 1 (it only reaps)


def _serve_map(child: int, line: bytes) -> bytes:
    """A pre-started environment's PID 1 answers its child's ``m <host uid> <host gid> <uid>
    <gid>``: the maps of the child's new user namespace (see ``_finish_drop``)."""
    try:
        uid, gid, in_uid, in_gid = (int(x) for x in line.split()[1:5])
        if uid == 0 or gid == 0:
            return b"e\n"
        # SAFETY: maps C's own new user namespace: its in-sandbox ids to the environment's host
        # ids, and root to root (so that root's files show as root's; nothing there is root).
        for name, inner, outer in (("uid_map", in_uid, uid), ("gid_map", in_gid, gid)):
            with open(f"/proc/{child}/{name}", "w") as f:
                f.write(f"0 0 1\n{inner} {outer} 1\n")
    except (OSError, ValueError):
        return b"e\n"
    return b"k\n"


def _drop_host(uid: int, gid: int) -> None:
    """Drop to the environment's host ids, without capabilities (PID 1, once it has mapped)."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    L.capset_zero()
    L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)


def _init(ctl: socket.socket, child: int, sock: socket.socket) -> None:
    """PID 1 of a pooled environment once C is forked: never returns.

    While C prepares, B serves its requests on ``sock`` (lines: ``x`` before C execs a runtime).
    When ``sock`` closes (C exec'd, or is a python runtime about to run, or died), B reaps every
    process of the sandbox (orphans are re-parented to it) until C ends, then sends C's wait
    status to the host (``{"t": "exit", "status": ...}``) and exits, which ends the sandbox.
    Had the runtime been PID 1 itself, the zombies of a handler's background processes would
    fill the sandbox's pids limit (issue 11, item 11)."""
    # PID 1 ignores signals it has no handler for from inside its namespace: drop Python's
    # SIGINT handler so that nothing in the sandbox can make B raise KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    status = None
    execing = False
    try:
        got = b""
        while True:
            chunk = sock.recv(512)
            if not chunk:
                break
            got += chunk
            while b"\n" in got:
                line, got = got.split(b"\n", 1)
                if line == b"x":
                    execing = True
    except OSError:
        pass
    sock.close()
    if execing:  # C exec'd its runtime (its end is close-on-exec), or died trying
        pid, st = os.waitpid(child, os.WNOHANG)
        if pid == 0:
            with contextlib.suppress(OSError):
                _send(ctl, {"t": "running"})
        else:
            status = st
    while status is None:
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:  # cannot happen while C lives; leave rather than spin
            status = 0
            break
        if pid == child:
            status = st
    with contextlib.suppress(OSError):
        _send(ctl, {"t": "exit", "status": status})
    code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
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


def _finish_drop(
    spec: dict[str, Any], seccomp: L.SeccompProgram, mapper: Callable[[str], None] | None
) -> None:
    """Become the sandbox user: with ``host_uid``/``host_gid`` (the environment's own host ids,
    so that per-user kernel limits are its own) and a ``mapper`` (which has the maps of our new
    user namespace written by a privileged process: the host, or PID 1), that user is
    ``uid``/``gid`` in a user namespace of its own; otherwise ``uid``/``gid`` on the host."""
    os.setgroups([])
    if "host_uid" in spec and mapper is not None:
        host_uid, host_gid = spec["host_uid"], spec["host_gid"]
        os.setresgid(host_gid, host_gid, host_gid)
        os.setresuid(host_uid, host_uid, host_uid)
        try:
            # Created unprivileged, so it is owned by (and its limits counted against) host_uid.
            L.unshare(L.CLONE_NEWUSER)
        except OSError:
            # A host that refuses unprivileged user namespaces: the environment keeps its own
            # host uid (and so its own per-user limits), seen inside as that uid, not 993.
            pass
        else:
            mapper(f"m {host_uid} {host_gid} {spec['uid']} {spec['gid']}\n")
            # A new user namespace starts with every capability, bounding set included: empty
            # it (the zygote's emptied bounding set was the initial namespace's).
            L.clear_capabilities(CAP_LAST[0])
    else:
        os.setresgid(spec["gid"], spec["gid"], spec["gid"])
        os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    L.capset_zero()  # the inheritable set survives setuid (and a new user ns grants all)
    # SAFETY: no_new_privs first, so the filter is allowed without CAP_SYS_ADMIN and no exec can
    # regain privileges; the filter is the last privileged step.
    L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
    seccomp.install()
    os.umask(0o022)


def _drop_privileges(spec: dict[str, Any], mapper: Callable[[str], None] | None = None) -> None:
    _finish_drop(spec, _prepare_drop(spec), mapper)


def _map_by(sock: socket.socket, request: dict[str, Any] | None = None) -> Callable[[str], None]:
    """A mapper asking over ``sock``: PID 1 (a line, answered ``k``), or with ``request`` the
    host (``{"t": "map"}`` on the control socket, answered ``{"t": "mapped"}``)."""

    def ask(line: str) -> None:
        if request is None:
            sock.sendall(line.encode())
            ok = sock.recv(32) == b"k\n"
        else:
            _send(sock, request)
            answer = json.loads(sock.recv(4096) or b"{}")
            ok = answer.get("t") == "mapped"
        if not ok:
            raise RuntimeError("the sandbox user's user namespace could not be mapped")

    return ask


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
    init, init_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # SAFETY: B is single-threaded; C only runs _exec_waiting_runtime, which ends in exec or _exit.
    child = os.fork()
    if child == 0:
        init.close()
        _exec_waiting_runtime(base, theirs.fileno(), init_c)
    theirs.close()
    init_c.close()
    line = init.recv(256)  # C's map request (or EOF: C died, or no user namespace)
    if line.startswith(b"m "):
        init.sendall(_serve_map(child, line))  # B itself drops once the trees are in
    init.close()
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
    if "host_uid" in base:
        _drop_host(base["host_uid"], base["host_gid"])
        _prepare_drop(base).install()
    else:
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


def _exec_waiting_runtime(base: dict[str, Any], sock_fd: int, init: socket.socket) -> None:
    """C: never returns."""
    try:
        os.dup2(sock_fd, WAIT_FD)  # over B's control socket (close-on-exec anyway)
        _drop_privileges(base, _map_by(init))
        init.close()
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
CAP_LAST = [40]  # /proc/sys/kernel/cap_last_cap, read by the zygote


def load_privilege_drop(bpf: bytes) -> None:
    """The zygote's part of every environment's privilege drop, done once and inherited by each
    fork: the seccomp program (from the host-built BPF) ready to install, and empty bounding and
    ambient capability sets. A bounding set limits only what an execve can grant, so the zygote
    keeps its own (effective, permitted) capabilities for building environments; its children
    drop those when they change uid (``_finish_drop``). Done per environment, these were ~0.35
    ms of CPU on every start."""
    # SAFETY: the zygote is root with CAP_SETPCAP; emptying its bounding set only narrows what
    # any of its descendants could ever gain through an execve.
    CAP_LAST[0] = L.cap_last_cap()
    L.clear_capabilities(CAP_LAST[0])
    SECCOMP[0] = L.SeccompProgram(bpf) if bpf else None


def set_environ(env: dict[str, str]) -> None:
    """Make ``env`` the whole process environment (``os.environ`` and the C ``environ``)."""
    os.environ.clear()
    os.environ.update(env)


def _become_runtime(ctl: socket.socket, spec: dict[str, Any], init: socket.socket) -> int:
    os.chdir("/var/task")
    env = dict(spec["env"])
    if spec["mode"] == "exec":
        ex = spec["exec"]
        path = next((p for p in ex["candidates"] if os.access(p, os.X_OK)), None)
        if path is None:
            tried = " or ".join(ex["candidates"])
            _report(ctl, "Runtime.InvalidEntrypoint", "Couldn't find valid bootstrap(s): " + tried)
            return 127
        init.sendall(b"x\n")  # PID 1 tells the host once the exec has closed our end
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
    init.close()  # PID 1 starts reaping
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
