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
import os
import shutil
from pathlib import Path

SANDBOX_UID = 993
SANDBOX_GID = 990
SANDBOX_USER = "sbx_user1051"
MOUNT_POINTS = ("usr", "etc/ssl", "var/task", "var/runtime", "opt", "tmp", "proc", "dev")
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


def add_mount_point(root: Path, absolute: Path) -> str:
    """Create ``absolute`` (e.g. an interpreter prefix) inside the skeleton, every level 0755."""
    cur = root
    for part in absolute.relative_to("/").parts:
        cur = cur / part
        cur.mkdir(mode=0o755, exist_ok=True)
    return str(absolute)


_libc = ctypes.CDLL(None, use_errno=True)
_MNT_DETACH = 2


def prepare_tmp(path: Path, size_mb: int) -> None:
    """Mount a tmpfs of ``size_mb`` at host dir ``path`` (created if needed), once.

    Idempotent: an existing mount at ``path`` is kept as it is, so /tmp survives a reset of the
    environment that owns it. Pages are charged to the memcg of the sandbox that writes them.
    """
    path.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(path):
        return
    opts = f"size={size_mb}m,mode=1777".encode()
    # SAFETY: mounts over a directory the caller owns for this environment; nosuid/nodev.
    if _libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", ctypes.c_ulong(2 | 4), opts) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {path}: {os.strerror(err)}")


def release_tmp(path: Path) -> None:
    """Unmount (lazily) what ``prepare_tmp`` mounted and remove the directory. Idempotent."""
    # SAFETY: detach only this tmpfs; sandboxes still holding it keep it until they exit.
    if os.path.ismount(path) and _libc.umount2(str(path).encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {path}: {os.strerror(err)}")
    with contextlib.suppress(FileNotFoundError, OSError):
        path.rmdir()


_SYS_OPEN_TREE = 428  # x86_64 and aarch64
_OPEN_TREE_CLONE = 1
_O_CLOEXEC = 0o2000000


def open_tree_clone(path: Path) -> int:
    """A detached copy of the mount at ``path`` (a bind of that directory), as an fd.

    A pre-forked sandbox's mount namespace predates the spec, so it cannot bind host paths that
    were mounted later (a fresh /tmp tmpfs); a detached tree can be attached in any namespace.
    """
    # SAFETY: creates an anonymous bind mount owned by this fd only; closing the fd frees it.
    fd = int(
        _libc.syscall(
            ctypes.c_long(_SYS_OPEN_TREE), ctypes.c_int(-100), str(path).encode(),
            ctypes.c_uint(_OPEN_TREE_CLONE | _O_CLOEXEC),
        )
    )  # fmt: skip
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"open_tree {path}: {os.strerror(err)}")
    return fd
