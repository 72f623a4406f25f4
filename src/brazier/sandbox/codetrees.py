"""Read-only filesystems whose root is a code or layer tree, for ``/var/task`` and ``/opt``.

A bind mount of ``<data dir>/code/trees/<sha>`` shows that host path as the root field of its
/proc/self/mountinfo line (field 4: the mount's root within its filesystem). Here each tree is
the lower layer of a read-only overlay instead: the overlay's root is the tree, so the root field
is ``/``. Its lower layers are named ``/proc/self/fd/N`` (resolved by the kernel when the overlay
is made), so its mount options name no host path either; the source field is ``code``.

An overlay is made once per tree (about 0.2-0.5 ms, see decision 0024) as a detached mount that
only this process holds, by fd, as ``TmpVolume`` does for /tmp; each sandbox gets a clone of it
(``open_tree``), which costs what the former bind clone cost. The most recently used trees are
kept (``keep``); a tree replaced at its path (another inode) gets a new overlay. A kept overlay
pins its tree (its dentries hold the lower files), so every ``PRUNE_EVERY`` clones the overlays
of trees no longer at their path (collected, decision 0018) are closed: their space is freed
once the last sandbox using them ends.

Where overlayfs is missing or refuses the tree (a lower directory nested too deep in stacked
filesystems), the tree is bound as before and the failure is logged once.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import logging
import os
from pathlib import Path

from .rootfs import clone_detached, open_tree_clone

log = logging.getLogger(__name__)

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT = 430, 431, 432  # x86_64, aarch64
_FSOPEN_CLOEXEC = 1
_FSCONFIG_SET_STRING, _FSCONFIG_CMD_CREATE = 1, 6
_MOUNT_ATTR_RDONLY, _MOUNT_ATTR_NOSUID, _MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4

KEEP_TREES = 256  # overlays kept for reuse (one small superblock each)
PRUNE_EVERY = 32  # clones between two looks for overlays of removed trees


def _syscall_fd(what: str, nr: int, *args: object) -> int:
    fd = int(_libc.syscall(ctypes.c_long(nr), *args))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return fd


def _fsconfig(fs: int, key: bytes, value: bytes | None, cmd: int = _FSCONFIG_SET_STRING) -> None:
    _syscall_fd(
        "fsconfig " + key.decode(),
        _SYS_FSCONFIG,
        ctypes.c_int(fs),
        ctypes.c_uint(cmd),
        key or None,
        value,
        ctypes.c_int(0),
    )


def overlay_of(tree: Path, empty: Path) -> int:
    """A detached read-only overlay whose root shows ``tree`` (over the empty ``empty``: an
    overlay without an upper layer needs two lower ones), as an fd."""
    fds = [os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for d in (tree, empty)]
    # By fd path: mountinfo shows /proc/self/fd/N, not the host path.
    layers = [f"/proc/self/fd/{fd}".encode() for fd in fds]
    try:
        try:
            return _overlay([(b"lowerdir+", layer) for layer in layers])
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            # Kernels before 6.8 lack "lowerdir+" (Debian 12's 6.1): one colon-separated list.
            return _overlay([(b"lowerdir", b":".join(layers))])
    finally:
        for fd in fds:
            os.close(fd)


def _overlay(options: list[tuple[bytes, bytes]]) -> int:
    # SAFETY: a new read-only overlay superblock attached to no mount point; the host keeps
    # only an fd, sandboxes get clones of it on their own /var/task or /opt.
    fs = _syscall_fd("fsopen overlay", _SYS_FSOPEN, b"overlay", ctypes.c_uint(_FSOPEN_CLOEXEC))
    try:
        for key, value in options:
            _fsconfig(fs, key, value)
        _fsconfig(fs, b"source", b"code")
        _fsconfig(fs, b"", None, _FSCONFIG_CMD_CREATE)
        attrs = _MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV
        return _syscall_fd(
            "fsmount overlay",
            _SYS_FSMOUNT,
            ctypes.c_int(fs),
            ctypes.c_uint(_FSOPEN_CLOEXEC),
            ctypes.c_uint(attrs),
        )
    finally:
        os.close(fs)


class CodeTrees:
    """Detached mounts of code and layer trees whose root is the tree (see the module)."""

    def __init__(self, empty: Path, keep: int = KEEP_TREES) -> None:
        self._empty = empty
        self._keep = keep
        self._overlays: collections.OrderedDict[tuple[Path, int, int], int] = (
            collections.OrderedDict()
        )
        self._overlay_works = True
        self._clones = 0

    def clone(self, tree: Path) -> int:
        """A new detached mount of ``tree`` for one sandbox to attach (the caller closes it)."""
        if not self._overlay_works:
            return open_tree_clone(tree)
        self._clones += 1
        if self._clones % PRUNE_EVERY == 0:
            self.prune()
        st = os.stat(tree)
        key = (tree, st.st_dev, st.st_ino)
        fd = self._overlays.get(key)
        if fd is None:
            try:
                fd = overlay_of(tree, self._empty)
            except FileNotFoundError:
                raise
            except OSError as e:
                self._overlay_works = False
                log.warning("code trees are bind mounts (their host path shows): %s", e)
                return open_tree_clone(tree)
            self._overlays[key] = fd
            while len(self._overlays) > self._keep:
                os.close(self._overlays.popitem(last=False)[1])
        else:
            self._overlays.move_to_end(key)
        clone, self._overlays[key] = clone_detached(fd, str(tree))
        return clone

    def prune(self) -> int:
        """Close the overlays of trees no longer at their path; how many were closed."""
        gone = []
        for key in self._overlays:
            tree, dev, ino = key
            try:
                st = os.stat(tree)
            except OSError:
                gone.append(key)
                continue
            if (st.st_dev, st.st_ino) != (dev, ino):
                gone.append(key)
        for key in gone:
            os.close(self._overlays.pop(key))
        return len(gone)

    @property
    def kept(self) -> int:
        return len(self._overlays)

    def close(self) -> None:
        """Drop every overlay (sandboxes keep their clones). Idempotent."""
        while self._overlays:
            os.close(self._overlays.popitem()[1])
