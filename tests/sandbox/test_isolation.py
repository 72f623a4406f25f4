"""What a tenant inside a sandbox can and cannot see or do."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from brazier.sandbox import LinuxSandboxFactory

from .conftest import INIT_DIR, code_dir, json_lines, needs_root, run, spec

pytestmark = [pytest.mark.sandbox, needs_root]

PROBE = r"""
#!/usr/bin/python3
import ctypes, errno, json, os, socket, sys
def emit(**kw): print(json.dumps(kw), flush=True)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split()[1]
def err(fn):
    try:
        fn(); return 0
    except OSError as e:
        return e.errno
emit(uid=os.getuid(), gid=os.getgid(), groups=os.getgroups(), cap_eff=status("CapEff"),
     cap_bnd=status("CapBnd"), nnp=status("NoNewPrivs"), seccomp=status("Seccomp"),
     pids=sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), mypid=os.getpid(),
     hostname=socket.gethostname(), ifaces=[n for _, n in socket.if_nameindex()],
     root=sorted(os.listdir("/")), shadow=os.path.exists("/etc/shadow"),
     sys=os.path.exists("/sys/kernel"), secret=os.path.exists(os.environ["SECRET_DIR"]),
     passwd=open("/etc/passwd").read(), cwd=os.getcwd(), env=dict(os.environ),
     nofile=__import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE))
emit(task_ro=err(lambda: open("/var/task/x", "w")), opt_ro=err(lambda: open("/opt/x", "w")),
     root_ro=err(lambda: open("/x", "w")), usr_ro=err(lambda: open("/usr/x", "w")))
with open("/tmp/small", "wb") as f:
    f.write(b"x" * 1024)
def fill():
    with open("/tmp/big", "wb") as f:
        for _ in range(64):
            f.write(b"\0" * (1 << 20)); f.flush()
emit(tmp_ok=os.path.getsize("/tmp/small"), tmp_full=err(fill))
libc = ctypes.CDLL(None, use_errno=True)
def sc(*args):
    r = getattr(libc, args[0])(*args[1:])
    return ctypes.get_errno() if r != 0 else 0
emit(mount=sc("mount", b"none", b"/tmp", b"tmpfs", 0, None),
     unshare=sc("unshare", 0x10000000), setns=sc("setns", 0, 0),
     ptrace=sc("ptrace", 0, 0, 0, 0), chroot=sc("chroot", b"/tmp"))
s = socket.socket(); s.settimeout(2)
s.connect(("127.0.0.1", 9001)); s.sendall(b"hello from inside"); s.close()
def host_port():
    c = socket.socket(); c.settimeout(2); c.connect(("127.0.0.1", int(os.environ["HOST_PORT"])))
emit(host_port=err(host_port))
def lower_oom_score():
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("-1000")
emit(oom_score_adj=int(open("/proc/self/oom_score_adj").read()), oom_lower=err(lower_oom_score))
"""


def test_isolation_facts(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.mkdir()
    code = code_dir(tmp_path, PROBE)
    layer = tmp_path / "layer"
    layer.mkdir()
    host = socket.socket()
    host.bind(("127.0.0.1", 0))
    host.listen()
    env = {"SECRET_DIR": str(secret), "HOST_PORT": str(host.getsockname()[1])}

    async def go(f: LinuxSandboxFactory) -> tuple[dict[str, object], bytes]:
        sbx = await f.start(spec(code, env=env, layer_dir=layer, ephemeral_mb=8))
        loop = asyncio.get_running_loop()
        conn, _ = await asyncio.wait_for(loop.sock_accept(sbx.listener), 10)
        got = await asyncio.wait_for(loop.sock_recv(conn, 100), 10)
        conn.close()
        result = await json_lines(sbx)
        assert (await sbx.wait()).exit_code == 0, result["_raw"]
        await sbx.kill()
        return result, got

    try:
        r, got = run(go, pool_size=0)
    finally:
        host.close()
    assert got == b"hello from inside"
    assert (r["uid"], r["gid"], r["groups"]) == (993, 990, [])
    assert r["cap_eff"] == r["cap_bnd"] == "0000000000000000"
    assert (r["nnp"], r["seccomp"]) == ("1", "2")
    # PID 1 is the environment's init (root's, so hidden by hidepid=2); the runtime its child.
    assert r["mypid"] == 2 and r["pids"] == [2], r["pids"]
    assert r["hostname"] == "localhost" != socket.gethostname()
    assert r["ifaces"] == ["lo"]
    assert not r["shadow"] and not r["sys"] and not r["secret"]
    assert set(r["root"]) <= {"bin", "dev", "etc", "lib", "lib64", "opt", "proc", "root", "sbin",
                              "tmp", "usr", "var"}  # fmt: skip
    assert "sbx_user1051:x:993:990" in r["passwd"]
    assert r["cwd"] == "/var/task"
    r["env"].pop("LC_CTYPE", None)  # added by python3 itself (PEP 538 locale coercion)
    assert r["env"] == {**env, "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}
    assert r["nofile"] == [1024, 1024]
    for key in ("task_ro", "opt_ro", "root_ro", "usr_ro"):
        assert r[key] == errno.EROFS, key
    assert r["tmp_ok"] == 1024 and r["tmp_full"] == errno.ENOSPC
    for key in ("mount", "unshare", "setns", "ptrace", "chroot"):
        assert r[key] == errno.EPERM, key
    assert r["host_port"] == errno.ECONNREFUSED
    # The host's OOM killer takes tenant code before the server, and tenant code cannot change it.
    assert r["oom_score_adj"] == 500
    assert r["oom_lower"] == errno.EACCES


def test_seccomp_blocks_namespace_clone(tmp_path: Path) -> None:
    code = code_dir(
        tmp_path,
        """
        #!/usr/bin/python3
        import ctypes, json
        libc = ctypes.CDLL(None, use_errno=True)
        # raw clone(CLONE_NEWUSER|SIGCHLD) and clone3: both must fail before creating anything
        r1 = libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0); e1 = ctypes.get_errno()
        r2 = libc.syscall(435, 0, 0); e2 = ctypes.get_errno()
        print(json.dumps({"clone": [r1, e1], "clone3": [r2, e2]}))
        """,
    )

    async def go(f: LinuxSandboxFactory) -> dict[str, object]:
        sbx = await f.start(spec(code))
        r = await json_lines(sbx)
        await sbx.kill()
        return r

    r = run(go, pool_size=0)
    assert r["clone"] == [-1, errno.EPERM], r["_raw"]
    assert r["clone3"] == [-1, errno.ENOSYS]


def test_only_unix_inet_and_netlink_sockets(tmp_path: Path) -> None:
    """AF_VSOCK is not confined by the network namespace (on a VM host it reaches the
    hypervisor): it, and every family besides AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK, is
    refused with EAFNOSUPPORT."""
    code = code_dir(
        tmp_path,
        """
        #!/usr/bin/python3
        import ctypes, json, socket
        libc = ctypes.CDLL(None, use_errno=True)
        def make(family, kind):
            try:
                socket.socket(family, kind).close(); return 0
            except OSError as e:
                return e.errno
        def raw(family):  # socket(2) with bits above the int the kernel reads
            libc.syscall.restype = ctypes.c_long
            r = libc.syscall(41, ctypes.c_long(family), 2, 0)
            return ctypes.get_errno() if r < 0 else 0
        res = {str(f): make(f, k) for f, k in ((1, 1), (2, 1), (10, 2), (16, 3), (40, 1),
                                               (17, 2), (3, 2), (38, 5), (44, 3))}
        res["pair"] = 0 if socket.socketpair() else 1
        res["high"] = raw((1 << 32) | 40)
        print(json.dumps(res))
        """,
    )

    async def go(f: LinuxSandboxFactory) -> dict[str, object]:
        sbx = await f.start(spec(code))
        r = await json_lines(sbx)
        await sbx.kill()
        return r

    r = run(go, pool_size=0)
    for family in ("1", "2", "10", "16"):
        assert r[family] == 0, (family, r["_raw"])
    for family in ("40", "17", "3", "38", "44", "high"):
        assert r[family] == errno.EAFNOSUPPORT, (family, r["_raw"])
    assert r["pair"] == 0


def test_orphans_are_reaped_under_provided_runtime(tmp_path: Path) -> None:
    """A custom runtime's orphans (1,200 background processes whose shells exit at once) are
    reaped by the environment's PID 1; with the runtime as PID 1 they stayed zombies until the
    pids limit (1,024) stopped every fork."""
    code = code_dir(
        tmp_path,
        r"""
        #!/usr/bin/python3
        import json, os, subprocess, time
        loop = "i=0; while [ $i -lt 100 ]; do (/bin/true &); i=$((i+1)); done"
        for _ in range(12):
            os.system(loop)
        time.sleep(0.2)
        def state(p):
            try:
                return open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0]
            except OSError:
                return "gone"
        zombies = sum(state(p) == "Z" for p in os.listdir("/proc") if p.isdigit())
        spawn = [subprocess.run(["/bin/true"]).returncode for _ in range(5)]
        print(json.dumps({"zombies": zombies, "spawn": spawn}))
        """,
    )

    async def go(f: LinuxSandboxFactory) -> dict[str, object]:
        sbx = await f.start(spec(code))
        r = await json_lines(sbx)
        await sbx.kill()
        return r

    r = run(go, pool_size=0)
    assert r.get("zombies") == 0 and r["spawn"] == [0] * 5, r["_raw"][-300:]


INOTIFY_HOG = r"""
#!/usr/bin/python3
import ctypes, json, os, time
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while len(fds) < 10000:
    fd = libc.inotify_init1(0)
    if fd < 0:
        break
    fds.append(fd)
print(json.dumps({"held": len(fds), "errno": ctypes.get_errno(), "uid": os.getuid()}), flush=True)
if not os.environ.get("ONCE"):
    time.sleep(60)
"""


def test_per_user_limits_are_per_environment(tmp_path: Path) -> None:
    """Each environment maps the sandbox user to a host uid of its own, so the kernel's per-user
    limits are its own: one holding every inotify instance it may (128 by default) leaves
    another's ``inotify_init`` working (with one shared uid 993 it failed with EMFILE). And all
    sandboxes together are capped below the host's pid_max."""
    code = code_dir(tmp_path, INOTIFY_HOG)

    async def first_line(sbx: object) -> dict[str, object]:
        text = b""
        while b"\n" not in text:
            chunk = await sbx.read_output()  # type: ignore[attr-defined]
            assert chunk, text
            text += chunk
        return json.loads(text.split(b"\n")[0])  # type: ignore[no-any-return]

    async def go(f: LinuxSandboxFactory) -> tuple[dict[str, object], dict[str, object], str]:
        hog = await f.start(spec(code))
        held = await first_line(hog)
        other = await f.start(spec(code, env={"ONCE": "1"}))
        got = await first_line(other)
        pids_max = (f._tree.parents["pids"] / "pids.max").read_text().strip()
        await hog.kill()
        await other.kill()
        return held, got, pids_max

    held, got, pids_max = run(go, pool_size=1)
    assert held["errno"] == errno.EMFILE and held["uid"] == got["uid"] == 993, held
    assert got["held"] == held["held"] > 0, (held, got)
    from brazier.sandbox.cgroups import total_pids_max

    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert int(pids_max) == total_pids_max() < pid_max


def test_mountinfo_shows_no_host_paths_and_no_host_packages(tmp_path: Path) -> None:
    """/proc/self/mountinfo names no host path: not the state dir (/run/brazier-...), not the
    source tree (/var/runtime is part of the root's own tmpfs), not the code or layer trees
    (/var/task and /opt are filesystems whose root is the tree); mount points are Lambda-like
    paths, and the host interpreter's third-party packages are not readable."""
    code = code_dir(
        tmp_path,
        r"""
        #!/usr/bin/python3
        import json, os
        hidden = {p: sorted(os.listdir(p)) for p in ("/usr/lib/python3/dist-packages",
                  "/usr/local/lib/python3.11/dist-packages") if os.path.isdir(p)}
        print(json.dumps({"mountinfo": open("/proc/self/mountinfo").read(), "hidden": hidden,
                          "runtime": sorted(os.listdir("/var/runtime")),
                          "task": sorted(os.listdir("/var/task")),
                          "opt": sorted(os.listdir("/opt"))}))
        """,
    )
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "mod.py").write_text("x = 1\n")

    async def go(f: LinuxSandboxFactory) -> dict[str, Any]:
        sbx = await f.start(spec(code, layer_dir=layer))
        r = await json_lines(sbx)
        await sbx.kill()
        return r

    r = run(go, pool_size=0)
    assert r["task"] == ["bootstrap"] and r["opt"] == ["python"], r
    lines = [line.split() for line in r["mountinfo"].splitlines()]
    points = {fields[4] for fields in lines}
    assert points <= {"/", "/usr", "/etc/ssl", "/proc", "/dev", "/dev/shm", "/var/task", "/opt",
                      "/tmp", *r["hidden"]}, points  # fmt: skip
    for host_path in ("/run/brazier", str(INIT_DIR), str(tmp_path), "/work", "/root", "/home"):
        assert host_path not in r["mountinfo"], (host_path, r["mountinfo"])
    assert "python_runtime.py" in r["runtime"]
    # The root field of every mount is the root of its filesystem or a Lambda-like path.
    for fields in lines:
        assert fields[3] in ("/", "/usr", "/etc/ssl", "/var/empty"), fields
    assert all(listing == [] for listing in r["hidden"].values()), r["hidden"]
