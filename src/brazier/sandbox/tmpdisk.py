"""Disk-backed /tmp: one small ext4 filesystem per environment, on a loop device, from a pool.

Lambda's ``/tmp`` is disk with ``EphemeralStorage.Size`` as its size, separate from MemorySize. A
tmpfs is memory (its pages count against the memory limit and cannot be reclaimed without swap),
so each environment gets instead an ext4 image of its own: writing past the size gives ENOSPC,
and its page cache, though charged to the sandbox's memory cgroup, is reclaimable (decision 0022).

Everything slow happens off the critical path, in a refill task of the owner's task group:

* per size, a *template* is made once with ``mkfs.ext4`` (no journal, no reserved blocks for
  root, no lost+found, root directory 1777) and sized so that exactly ``size_mb`` MiB are usable
  by the sandbox user (``calibrate``);
* a pool of ``per_size`` ready filesystems is kept per size: a sparse copy of the template in an
  anonymous file (``O_TMPFILE``: it never has a name, so nothing is left on disk by a server
  killed with -9), attached to a free loop device (``LOOP_CONFIGURE`` with autoclear and direct
  I/O, so the image is not cached twice) and mounted as a *detached* mount (fsopen/fsmount: no
  host mount point). The host keeps only the mount's fd.

``take`` hands out one of those fds in O(1). Closing the last reference (the host's fd and the
sandboxes' clones) unmounts the filesystem; autoclear then frees the loop device and with it the
anonymous image. ``TmpDisks.probe`` reports whether this host can do it at all (loop devices,
mkfs.ext4, an ext4 driver); otherwise the factory falls back to a tmpfs /tmp.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import errno
import fcntl
import functools
import logging
import os
import shutil
import stat
import struct
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

_log = logging.getLogger(__name__)

MIB = 1 << 20
BLOCK = 4096
PER_SIZE = 8  # ready filesystems kept per size (each: a loop device, a mount, ~100 KiB kernel)
DEFAULT_SIZES = (512,)  # Lambda's default EphemeralStorage: prepared when the pool starts
OTHER_SIZE_POOL = 2  # ready filesystems of any other size, once a function asked for it
REFILL_PAUSE_S = 0.02  # between two fills: let cold starts have the CPU first
MKFS_TIMEOUT_S = 60.0

_LOOP_CTL_GET_FREE = 0x4C82
_LOOP_CONFIGURE = 0x4C0A
_LO_FLAGS_AUTOCLEAR, _LO_FLAGS_DIRECT_IO = 4, 16
# struct loop_config { __u32 fd; __u32 block_size; struct loop_info64 info; __u64 reserved[8]; }
# struct loop_info64 { __u64 device, inode, rdevice, offset, sizelimit; __u32 number,
#   encrypt_type, encrypt_key_size, flags; __u8 file_name[64], crypt_name[64], key[32];
#   __u64 init[2]; }
_LOOP_CONFIG = struct.Struct("=II5Q4I64s64s32s2Q8Q")

_SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT = 430, 431, 432  # x86_64, aarch64
_FSOPEN_CLOEXEC = 1
_FSCONFIG_SET_FLAG, _FSCONFIG_SET_STRING, _FSCONFIG_CMD_CREATE = 0, 1, 6
_FSMOUNT_CLOEXEC = 1
_MOUNT_ATTR_NOSUID, _MOUNT_ATTR_NODEV = 0x2, 0x4
_libc = ctypes.CDLL(None, use_errno=True)
# Making a disk (loop, mount: ~12 ms) and dropping one (the unmount: ~17 ms, more when dirty)
# block a thread, mostly waiting on I/O: these threads, so that they never hold up the default
# executor, whose threads make the cgroups of cold starts. Four: a server stopping with 200
# environments drops their disks in about a second.
DISK_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="brazier-tmpdisk")


async def in_disk_thread(work: Callable[[], None]) -> None:
    await asyncio.get_running_loop().run_in_executor(DISK_THREADS, work)


class TmpDiskUnavailable(OSError):
    """This host cannot make loop-mounted ext4 filesystems (no loop devices, no mkfs.ext4...)."""


def _syscall(what: str, nr: int, *args: object) -> int:
    ret = int(_libc.syscall(ctypes.c_long(nr), *args))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _image_blocks(size_mb: int) -> int:
    """A first guess of the image size for ``size_mb`` usable: ext4's fixed costs (inode tables,
    bitmaps, descriptors: ~1.6 %) and its reserve for delayed allocation (2 %, at most 16 MiB)."""
    want = size_mb * MIB // BLOCK
    return want + want // 25 + 1024


def attach_loop(image_fd: int, *, read_only: bool = False) -> int:
    """Attach ``image_fd`` to a free loop device (autoclear, direct I/O); returns an open fd of
    the device. The device frees itself once the last opener (fd or mount) is gone."""
    flags = _LO_FLAGS_AUTOCLEAR | _LO_FLAGS_DIRECT_IO | (1 if read_only else 0)
    config = _LOOP_CONFIG.pack(image_fd, BLOCK, 0, 0, 0, 0, 0, 0, 0, 0, flags,
                               b"brazier-tmp", b"", b"", 0, 0, *([0] * 8))  # fmt: skip
    ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(64):  # another process may take the free device first: try the next
            # SAFETY: asks the loop driver for (or to create) an unused device; changes nothing.
            number = fcntl.ioctl(ctl, _LOOP_CTL_GET_FREE)
            mode = os.O_RDONLY if read_only else os.O_RDWR
            dev = os.open(f"/dev/loop{number}", mode | os.O_CLOEXEC)
            try:
                # SAFETY: binds our own anonymous image to a device nobody uses (EBUSY if taken);
                # autoclear detaches it when our fd and the mount are gone, kill -9 included.
                fcntl.ioctl(dev, _LOOP_CONFIGURE, config)
                return dev
            except OSError as e:
                os.close(dev)
                if e.errno != errno.EBUSY:  # lost the race for this device
                    raise
        raise OSError(errno.EBUSY, "no free loop device after 64 tries")
    finally:
        os.close(ctl)


def mount_detached(device_fd: int, *, read_only: bool = False) -> int:
    """Mount the ext4 filesystem on ``device_fd`` as a detached mount (nosuid, nodev); returns
    the mount's fd. ``noinit_itable``: the kernel does not zero inode tables in the background
    (they are holes of a sparse image, read as zeros), which would allocate the image on disk."""
    # SAFETY: a new ext4 superblock on our own loop device, attached to no mount point.
    fs = _syscall("fsopen ext4", _SYS_FSOPEN, b"ext4", ctypes.c_uint(_FSOPEN_CLOEXEC))
    try:
        source = f"/proc/self/fd/{device_fd}".encode()
        options: list[tuple[int, bytes, bytes | None]] = [
            (_FSCONFIG_SET_STRING, b"source", source),
            (_FSCONFIG_SET_FLAG, b"noinit_itable", None),
            # No cache flushes: /tmp is thrown away with its environment, so nothing needs to
            # reach the platter in order. Halves the unmount (34 -> 17 ms at the median).
            (_FSCONFIG_SET_FLAG, b"nobarrier", None),
        ]
        if read_only:
            options.append((_FSCONFIG_SET_FLAG, b"ro", None))
        for cmd, key, value in options:
            _syscall("fsconfig " + key.decode(), _SYS_FSCONFIG, ctypes.c_int(fs),
                     ctypes.c_uint(cmd), key, value, ctypes.c_int(0))  # fmt: skip
        _syscall("fsconfig create", _SYS_FSCONFIG, ctypes.c_int(fs),
                 ctypes.c_uint(_FSCONFIG_CMD_CREATE), None, None, ctypes.c_int(0))  # fmt: skip
        attrs = ctypes.c_uint(_MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV)
        return _syscall("fsmount", _SYS_FSMOUNT, ctypes.c_int(fs),
                        ctypes.c_uint(_FSMOUNT_CLOEXEC), attrs)  # fmt: skip
    finally:
        os.close(fs)


def usable_bytes(mount_fd: int) -> int:
    """What an unprivileged user may write on the mounted filesystem (``df``'s Available)."""
    d = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=mount_fd)
    try:
        st = os.fstatvfs(d)
    finally:
        os.close(d)
    return st.f_bavail * st.f_frsize


def _run(args: list[str], fd: int) -> None:
    try:
        subprocess.run(  # fixed tools of e2fsprogs, no shell
            [*args, f"/proc/self/fd/{fd}"],
            pass_fds=[fd],
            capture_output=True,
            check=True,
            timeout=MKFS_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # out of the terminal's Ctrl-C, like every helper
        )
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", b"") or b""
        raise TmpDiskUnavailable(f"{args[0]} failed: {e} {detail.decode(errors='replace')}") from e


def _anonymous_file(directory: Path) -> int:
    return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)


def make_template(directory: Path, size_mb: int) -> int:
    """An anonymous ext4 image with exactly ``size_mb`` MiB usable by an unprivileged user, its
    root directory 1777 and empty (as Lambda's /tmp). Returns its fd (nameless: nothing to clean
    up). ``mkfs.ext4`` gives no way to ask for usable space, so the image is made, measured and
    made again larger until it holds enough; the surplus (a few blocks) is reserved for root
    (``tune2fs -r``), which makes the available space exact."""
    want = size_mb * MIB
    blocks = _image_blocks(size_mb)
    for _ in range(6):
        fd = _anonymous_file(directory)
        try:
            os.ftruncate(fd, blocks * BLOCK)
            _run(["mkfs.ext4", "-q", "-F", "-b", str(BLOCK), "-m", "0", "-L", "tmp",
                  "-O", "^has_journal,^resize_inode", "-E", "lazy_itable_init=1,nodiscard",
                  "-T", "default"], fd)  # fmt: skip
            surplus = _prepare_root(fd) - want
            if surplus >= 0:
                if surplus:
                    _run(["tune2fs", "-r", str(surplus // BLOCK)], fd)
                return fd
            blocks += -surplus // BLOCK + 256
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise TmpDiskUnavailable(f"could not size an ext4 image for {size_mb} MiB")


def _prepare_root(image_fd: int) -> int:
    """Mount the fresh image once: /tmp's mode, no lost+found; returns the usable bytes."""
    dev = attach_loop(image_fd)
    try:
        mnt = mount_detached(dev)
    finally:
        os.close(dev)
    try:
        root = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=mnt)
        try:
            # SAFETY: the root of our own fresh filesystem, mounted nowhere: /tmp's mode.
            os.fchmod(root, 0o1777)
            with contextlib.suppress(FileNotFoundError):
                os.rmdir("lost+found", dir_fd=root)
            os.fsync(root)
        finally:
            os.close(root)
        return usable_bytes(mnt)
    finally:
        os.close(mnt)  # the last reference: unmounts, and the loop device clears itself


def copy_sparse(src: int, dst: int) -> None:
    """Copy the data extents of ``src`` into ``dst`` (same size, holes kept)."""
    size = os.fstat(src).st_size
    os.ftruncate(dst, size)
    pos = 0
    while pos < size:
        try:
            start = os.lseek(src, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole remains
            return
        end = os.lseek(src, start, os.SEEK_HOLE)
        while start < end:
            n = os.copy_file_range(src, dst, end - start, start, start)
            if n <= 0:
                raise OSError(f"copy_file_range stopped at {start} of {end}")
            start += n
        pos = end


def discard_contents(mount_fd: int) -> None:
    """Delete every file of a disk about to be dropped: its dirty pages are then discarded, not
    written back to an image that is freed right after (the unmount of a /tmp holding 100 MiB
    not yet written took seconds). Only once no sandbox uses the disk any more."""
    root = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=mount_fd)
    try:
        for name in os.listdir(root):
            with contextlib.suppress(OSError):
                st = os.stat(name, dir_fd=root, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(name, dir_fd=root)
                else:
                    os.unlink(name, dir_fd=root)
    finally:
        os.close(root)


HOST_RESERVE = 1 << 30  # a new disk needs its size free on the host, and this much more


def make_disk(directory: Path, template_fd: int) -> int:
    """One ready filesystem from the template: its detached mount's fd. Refused (ENOSPC) when
    the host's filesystem has not its full size free (images are sparse: a check, not a
    reservation; see docs/security.md)."""
    st = os.statvfs(directory)
    need = os.fstat(template_fd).st_size + HOST_RESERVE
    if st.f_bavail * st.f_frsize < need:
        raise OSError(errno.ENOSPC, f"{directory} has less than {need >> 20} MiB free")
    image = _anonymous_file(directory)
    try:
        copy_sparse(template_fd, image)
        dev = attach_loop(image)
    finally:
        os.close(image)  # the loop device holds the file now
    try:
        return mount_detached(dev)
    finally:
        os.close(dev)


def loops_backed_by(directory: Path) -> list[str]:
    """The loop devices whose image lives (nameless) in ``directory``: for tests and ``doctor``
    (autoclear frees them with their last reference, so nothing needs sweeping)."""
    prefix = str(directory.resolve()) + "/"
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            if backing.read_text().startswith(prefix):
                found.append(backing.parent.parent.name)
    return sorted(found)


@dataclass(frozen=True, slots=True)
class FillTiming:
    """How long the last fill of one filesystem took (for ``statistics``)."""

    size_mb: int
    seconds: float


class TmpDisks:
    """Pools of ready /tmp filesystems per size. ``run`` (a task of the owner's task group)
    keeps them full; ``take`` is O(1) when the pool of that size has one."""

    def __init__(
        self,
        directory: Path,
        *,
        per_size: int = PER_SIZE,
        sizes: tuple[int, ...] = DEFAULT_SIZES,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.directory = directory
        self.per_size = per_size
        self._clock = clock
        self._templates: dict[int, int] = {}
        self._pools: dict[int, collections.deque[int]] = {s: collections.deque() for s in sizes}
        self._main_sizes = frozenset(sizes)
        self._wake = asyncio.Event()
        self._closed = False
        self._template_lock = asyncio.Lock()
        self.fill_times: list[FillTiming] = []
        self.taken = self.made_on_demand = 0  # disks handed out; of them, made on the cold path

    @staticmethod
    def probe(directory: Path) -> str | None:
        """None when this host can make disk-backed /tmp filesystems in ``directory``, else why
        not (for the one warning of the fallback)."""
        if not os.path.exists("/dev/loop-control"):
            return "no /dev/loop-control (the loop driver is not loaded or not visible)"
        for tool in ("mkfs.ext4", "tune2fs"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed (Debian: apt-get install e2fsprogs)"
        try:
            if "ext4" not in Path("/proc/filesystems").read_text():
                return "the kernel has no ext4 driver"
            directory.mkdir(parents=True, exist_ok=True)
            os.close(_anonymous_file(directory))
        except OSError as e:
            return f"cannot make anonymous files in {directory}: {e}"
        return None

    @property
    def closed(self) -> bool:
        return self._closed

    def pooled(self, size_mb: int) -> int:
        return len(self._pools.get(size_mb, ()))

    async def take(self, size_mb: int) -> int:
        """A ready filesystem of ``size_mb`` (its detached mount's fd, the caller's to close).
        From the pool when it has one; else made now in a thread (once per new size, or when the
        pool ran dry), and the pool of that size is filled for the next ones."""
        pool = self._pools.setdefault(size_mb, collections.deque())
        self._wake.set()
        self.taken += 1
        if pool:
            return pool.popleft()
        self.made_on_demand += 1
        return await self._make(await self._template(size_mb))

    async def _template(self, size_mb: int) -> int:
        async with self._template_lock:
            fd = self._templates.get(size_mb)
            if fd is None:
                make = functools.partial(make_template, self.directory, size_mb)
                fd = await asyncio.get_running_loop().run_in_executor(DISK_THREADS, make)
                self._templates[size_mb] = fd
            return fd

    def _target(self, size_mb: int) -> int:
        """How many ready filesystems of this size to keep: fewer for the rarer sizes (each
        costs ~1.3 MiB of kernel memory and a loop device)."""
        return self.per_size if size_mb in self._main_sizes else min(self.per_size, OTHER_SIZE_POOL)

    async def _make(self, template: int) -> int:
        """``make_disk`` in a thread; cancelled, it closes what the thread made."""
        loop = asyncio.get_running_loop()
        made = loop.run_in_executor(DISK_THREADS, make_disk, self.directory, template)
        try:
            return await asyncio.shield(made)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                os.close(await made)
            raise

    async def run(self) -> None:
        """Keep every pool at ``per_size`` until ``close``. Never raises (a failure is logged
        and retried later), so it cannot cancel the owner's task group."""
        while not self._closed:
            # Let the start that took a disk run first: a fill competes with it for the CPU.
            await asyncio.sleep(REFILL_PAUSE_S)
            for size_mb, pool in list(self._pools.items()):
                while len(pool) < self._target(size_mb) and not self._closed:
                    t0 = self._clock()
                    try:
                        fd = await self._make(await self._template(size_mb))
                    except OSError:
                        if self.closed:
                            return
                        _log.exception("preparing a %d MiB /tmp failed; retrying in 1 s", size_mb)
                        await asyncio.sleep(1.0)
                        continue
                    if self.closed:
                        os.close(fd)
                        return
                    pool.append(fd)
                    self.fill_times.append(FillTiming(size_mb, self._clock() - t0))
                    del self.fill_times[:-64]
                    await asyncio.sleep(REFILL_PAUSE_S)
            self._wake.clear()
            if all(len(p) >= self._target(s) for s, p in self._pools.items()):
                await self._wake.wait()

    def close(self) -> None:
        """Release every pooled filesystem and template (their loop devices clear themselves).
        Idempotent; blocking (unmounts): call it off the event loop."""
        self._closed = True
        self._wake.set()
        for pool in self._pools.values():
            while pool:
                os.close(pool.popleft())
        templates, self._templates = self._templates, {}
        for fd in templates.values():
            os.close(fd)
