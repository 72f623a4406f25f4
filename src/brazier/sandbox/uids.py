"""Host uids for execution environments: each gets its own, from a range reserved for brazier.

Inside the sandbox the runtime is ``sbx_user1051`` (993/990) as in Lambda, but in a user
namespace of its own that maps 993/990 to the environment's host uid/gid. The kernel counts its
per-user limits (inotify instances and watches, RLIMIT_NPROC, pending signals, ...) per host
uid, so no environment can use up another's.

The range is ``UID_BASE`` .. ``UID_BASE + UID_COUNT - 1`` (uid and gid are the same number);
keep it out of any other use on the host. A uid is leased by holding ``flock`` on
``LOCK_DIR/<uid>``, so servers running side by side never share one and a killed server's
leases end with its process. A lease is released only once nothing runs as its uid any more
(the environment's PID 1 is reaped, which ends every process of its pid namespace).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from .errors import SandboxUnavailable

UID_BASE = 2_000_000_000
UID_COUNT = 1 << 20
LOCK_DIR = Path("/run/brazier-uids")


class UidLease:
    """One host uid (and the gid of the same number), held until ``release``."""

    __slots__ = ("_fd", "_free", "uid")

    def __init__(self, uid: int, fd: int, free: list[int]) -> None:
        self.uid = uid
        self._fd = fd
        self._free = free

    @property
    def gid(self) -> int:
        return self.uid

    def release(self) -> None:
        """Idempotent. Closing the fd ends the flock; the lock file stays for the next lease."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
            self._free.append(self.uid)


class UidAllocator:
    def __init__(
        self, lock_dir: Path = LOCK_DIR, base: int = UID_BASE, count: int = UID_COUNT
    ) -> None:
        self._dir = lock_dir
        self._base = base
        self._count = count
        self._next = secrets.randbelow(count)  # servers side by side rarely probe the same uids
        # Released here first, so that the lock files number the most leases held at once.
        self._free: list[int] = []

    def _candidates(self) -> Iterator[int]:
        while self._free:
            yield self._free.pop()
        for _ in range(min(self._count, 4096)):
            yield self._base + self._next
            self._next = (self._next + 1) % self._count

    def lease(self) -> UidLease:
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for uid in self._candidates():
            fd = os.open(self._dir / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
            return UidLease(uid, fd, self._free)
        raise SandboxUnavailable("no free sandbox uid in brazier's range")
