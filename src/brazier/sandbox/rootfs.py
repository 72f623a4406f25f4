"""The sandbox's root filesystem: a small skeleton directory on the host, plus the mount plan that
PID 1 applies to it inside its private mount namespace (see ``_sandbox_init/_brazier_child.py``).

The skeleton holds only mount points and a minimal /etc (passwd/group with ``sbx_user1051``,
hosts, an empty resolv.conf, nsswitch.conf and the dynamic linker cache). /usr, /etc/ssl, the
interpreter prefix, the code, the layers and ``_sandbox_init`` are bound read-only on top of it;
there is no /sys and no other host file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path

from .tmpdisk import discard_contents, in_disk_thread
from .uids import UidLease

SANDBOX_UID = 993
SANDBOX_GID = 990
SANDBOX_USER = "sbx_user1051"
MOUNT_POINTS = (
    "usr",
    "etc/ssl",
    "var/task",
    "var/runtime",
    "var/runtime/sdk",  # discovery.SDK_MOUNT: the AWS SDKs, bound when installed
    "var/empty",
    "opt",
    "tmp",
    "proc",
    "dev",
)
MERGED_USR = ("bin", "sbin", "lib", "lib64", "lib32", "libx32")

_ETC = {
    "passwd": f"root:x:0:0:root:/root:/sbin/nologin\n"
    f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_GID}::/home/{SANDBOX_USER}:/sbin/nologin\n",
    "group": f"root:x:0:\n{SANDBOX_USER}:x:{SANDBOX_GID}:\n",
    "hosts": "127.0.0.1 localhost\n::1 localhost\n",
    "resolv.conf": "",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    "hostname": "localhost\n",
}


def build_skeleton(root: Path) -> list[tuple[str, str, bool]]:
    """Create the skeleton at ``root`` (idempotent); return the host-wide read-only binds."""
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # noqa: S103 - read-only for the sandbox user, like a real /
    binds: list[tuple[str, str, bool]] = [("/usr", "/usr", True)]
    for name in MERGED_USR:  # Debian 12 has merged /usr: these are symlinks into it
        host, here = Path("/") / name, root / name
        if host.is_symlink():
            if not here.is_symlink():
                here.symlink_to(os.readlink(host))
        elif host.is_dir():
            here.mkdir(mode=0o755, exist_ok=True)
            binds.append((str(host), f"/{name}", True))
    for d in MOUNT_POINTS:
        (root / d).mkdir(mode=0o755, parents=True, exist_ok=True)
    # The JS SDK where Node's own lookup from /var/task finds it, after /var/task/node_modules;
    # not on NODE_PATH, whose ESM fallback hook costs Node 20 a loader thread (decision 0019).
    modules = root / "var" / "node_modules"
    if not modules.is_symlink():
        modules.symlink_to("runtime/sdk/nodejs/node_modules")  # dangling without the SDK
    if Path("/etc/ssl").is_dir():
        binds.append(("/etc/ssl", "/etc/ssl", True))
    for name, text in _ETC.items():
        (root / "etc" / name).write_text(text)
    if Path("/etc/ld.so.cache").is_file():  # multiarch libs are not on the default search path
        shutil.copyfile("/etc/ld.so.cache", root / "etc" / "ld.so.cache")
    for p in root.joinpath("etc").iterdir():
        if p.is_file():
            os.chmod(p, 0o644)
    return binds


_MS_NOSUID, _MS_NODEV, _MNT_DETACH = 2, 4, 2
ROOT_TMPFS_MB = 16  # the skeleton and the runtime's own files: ~200 KiB


def mount_root(root: Path) -> None:
    """Give the skeleton a small tmpfs of its own (before ``build_skeleton``), so that the
    sandbox's ``/`` shows as ``/`` of a tmpfs in /proc/self/mountinfo, not as a host path."""
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    opts = f"size={ROOT_TMPFS_MB}m,mode=755".encode()
    # SAFETY: a fresh tmpfs on our own new state directory; unmount_root removes it.
    ret = _libc.mount(b"tmpfs", str(root).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, opts)
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {root}: {os.strerror(err)}")


def unmount_root(root: Path) -> None:
    """Undo ``mount_root`` (lazily: sandboxes still starting may hold it). Idempotent."""
    # SAFETY: only our own state directory's root, mounted by mount_root.
    _libc.umount2(str(root).encode(), _MNT_DETACH)


def copy_runtime(init_dir: Path, root: Path) -> None:
    """The runtime's files at ``/var/runtime`` inside the skeleton itself, rather than a bind of
    ``init_dir``, which would show the host's source tree in /proc/self/mountinfo."""
    dst = root / "var" / "runtime"
    for src in init_dir.iterdir():
        if (
            src.is_file()
            and not src.name.endswith(".c")
            and not src.name.startswith("_brazier_init")
        ):
            shutil.copy2(src, dst / src.name)
            os.chmod(dst / src.name, 0o755 if os.access(src, os.X_OK) else 0o644)


EMPTY_DIR = "/var/empty"  # what the hidden directories below show inside a sandbox


def hidden_dirs(prefixes: list[str]) -> list[str]:
    """The host interpreter's third-party package directories under ``prefixes``: a sandbox
    sees them empty (the runtime needs only the standard library; Lambda's come from
    /var/task, /opt and /var/runtime)."""
    found: list[str] = []
    for prefix in prefixes:
        base = Path(prefix)
        for pattern in ("lib/python3*/site-packages", "lib/python3*/dist-packages",
                        "lib/python3/dist-packages", "local/lib/python3*/site-packages",
                        "local/lib/python3*/dist-packages"):  # fmt: skip
            found += [str(p) for p in sorted(base.glob(pattern)) if p.is_dir()]
    return sorted(set(found))


def add_mount_point(root: Path, absolute: Path) -> str:
    """Create ``absolute`` (e.g. an interpreter prefix) inside the skeleton, every level 0755."""
    cur = root
    for part in absolute.relative_to("/").parts:
        cur = cur / part
        cur.mkdir(mode=0o755, exist_ok=True)
    return str(absolute)


_libc = ctypes.CDLL(None, use_errno=True)

_SYS_OPEN_TREE, _SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT = 428, 430, 431, 432  # x86_64, aarch64
_OPEN_TREE_CLONE = 1
_O_CLOEXEC = 0o2000000
_FSOPEN_CLOEXEC = 1
_FSCONFIG_SET_STRING, _FSCONFIG_CMD_CREATE = 1, 6
_MOUNT_ATTR_NOSUID, _MOUNT_ATTR_NODEV = 0x2, 0x4
_AT_EMPTY_PATH = 0x1000
_SYS_MOVE_MOUNT, _MOVE_MOUNT_F_EMPTY_PATH, _MNT_DETACH = 429, 0x4, 2


def _syscall_fd(what: str, nr: int, *args: object) -> int:
    fd = int(_libc.syscall(ctypes.c_long(nr), *args))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return fd


class TmpVolume:
    """One environment's /tmp: a filesystem of ``size_mb`` that the host holds only by fd: an
    ext4 disk of its own from ``tmpdisk.TmpDisks`` (``adopt``), or else a tmpfs.

    It is created with fsopen/fsmount as a detached mount, so it is mounted nowhere in the host's
    namespace: a thousand environments add no host mounts (each new sandbox's mount namespace
    starts as a copy of the host's, so every host mount would slow every sandbox start), and a
    server killed with -9 leaves none behind. Each sandbox of the environment gets a clone of it
    (``clone``), so the files survive a reset, as Lambda's /tmp does. Pages are charged to the
    memory cgroup of the sandbox that writes them: a tmpfs's for good, a disk's as reclaimable
    page cache. ``close`` frees it once no sandbox holds it.
    """

    def __init__(self, size_mb: int) -> None:
        self.size_mb = size_mb
        self._fd = -1
        self.on_disk = False  # a disk of its own (``adopt``), not a tmpfs charged as memory
        # The environment's host uid (see uids.py), set by the factory on first use and kept
        # across resets like the files, which it owns; released by ``close``.
        self.uid_lease: UidLease | None = None

    def _create(self) -> int:
        # SAFETY: a new tmpfs superblock, attached to no mount point; the host keeps only an fd.
        fs = _syscall_fd("fsopen tmpfs", _SYS_FSOPEN, b"tmpfs", ctypes.c_uint(_FSOPEN_CLOEXEC))
        try:
            for key, value in ((b"size", f"{self.size_mb}m".encode()), (b"mode", b"1777")):
                _syscall_fd(
                    "fsconfig " + key.decode(),
                    _SYS_FSCONFIG,
                    ctypes.c_int(fs),
                    ctypes.c_uint(_FSCONFIG_SET_STRING),
                    key,
                    value,
                    ctypes.c_int(0),
                )
            _syscall_fd(
                "fsconfig create",
                _SYS_FSCONFIG,
                ctypes.c_int(fs),
                ctypes.c_uint(_FSCONFIG_CMD_CREATE),
                None,
                None,
                ctypes.c_int(0),
            )
            attrs = ctypes.c_uint(_MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV)
            return _syscall_fd("fsmount", _SYS_FSMOUNT, ctypes.c_int(fs), ctypes.c_uint(1), attrs)
        finally:
            os.close(fs)

    @property
    def ready(self) -> bool:
        """Whether it has its filesystem (made by ``clone`` or given by ``adopt``)."""
        return self._fd >= 0

    def adopt(self, mount_fd: int) -> None:
        """Use this detached filesystem (a disk-backed one from ``tmpdisk.TmpDisks``) instead of
        a tmpfs: it then holds ``size_mb`` on disk, not in memory. Takes ownership of the fd."""
        if self._fd >= 0:
            os.close(mount_fd)
            return
        self._fd = mount_fd
        self.on_disk = True

    def clone(self) -> int:
        """A new detached mount of this /tmp, as an fd for one sandbox to attach (the caller
        closes it). Creates the tmpfs on first use."""
        if self._fd < 0:
            self._fd = self._create()
        clone, self._fd = clone_detached(self._fd, "/tmp")  # noqa: S108 - a label
        return clone

    def close(self) -> None:
        """Drop the host's reference (the files go with the last sandbox holding a clone; a
        disk's files are deleted first, so that its unmount writes nothing back: call it once no
        sandbox uses it). Idempotent. Freeing a full /tmp takes a while: call it off the event
        loop (``aclose``)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            if self.on_disk:
                discard_contents(fd)
            os.close(fd)
        self.on_disk = False  # a next use gets a new filesystem, disk or tmpfs
        lease, self.uid_lease = self.uid_lease, None
        if lease is not None:
            lease.release()

    async def aclose(self) -> None:
        """``close`` in the disk threads: dropping a disk-backed /tmp unmounts it (~50 ms)."""
        await in_disk_thread(self.close)


def clone_detached(fd: int, what: str) -> tuple[int, int]:
    """A clone of the detached mount ``fd`` for one sandbox, and the fd to keep as the source
    from now on (``fd`` itself, or a replacement after ``fd`` was closed).

    Kernels before 6.15 refuse to clone a detached mount (EINVAL; Debian 12's 6.1): there the
    mount is attached for a moment to a private staging directory, cloned twice (one for the
    sandbox, one kept as the next source) and detached again."""
    try:
        # SAFETY: an anonymous clone of our own detached mount, owned by the returned fd.
        clone = _syscall_fd(
            f"open_tree {what}",
            _SYS_OPEN_TREE,
            ctypes.c_int(fd),
            b"",
            ctypes.c_uint(_OPEN_TREE_CLONE | _O_CLOEXEC | _AT_EMPTY_PATH),
        )
        return clone, fd
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    staging = tempfile.mkdtemp(prefix="brazier-clone-", dir="/run")
    try:
        # SAFETY: attaches our own detached mount to our own new, empty directory.
        _syscall_fd(
            f"move_mount {what}",
            _SYS_MOVE_MOUNT,
            ctypes.c_int(fd),
            b"",
            ctypes.c_int(-100),
            staging.encode(),
            ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH),
        )
        try:
            clone = open_tree_clone(Path(staging))
            keep = open_tree_clone(Path(staging))
        finally:
            # SAFETY: detaches the mount we attached just above, nothing else.
            _libc.umount2(staging.encode(), _MNT_DETACH)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(staging)
    os.close(fd)
    return clone, keep


def open_tree_clone(path: Path) -> int:
    """A detached copy of the mount at ``path`` (a bind of that directory), as an fd.

    A pre-forked sandbox's mount namespace predates the spec, so it cannot bind what the host
    decides later (the function's code and layers); a detached tree can be attached anywhere.
    """
    # SAFETY: creates an anonymous bind mount owned by this fd only; closing the fd frees it.
    return _syscall_fd(
        f"open_tree {path}",
        _SYS_OPEN_TREE,
        ctypes.c_int(-100),
        str(path).encode(),
        ctypes.c_uint(_OPEN_TREE_CLONE | _O_CLOEXEC),
    )
