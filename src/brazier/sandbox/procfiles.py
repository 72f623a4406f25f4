"""Kernel files read or written on every invocation, kept open.

Opening ``/proc/<pid>/status`` or a cgroup file costs more than reading it; an environment reads
its memory peak and resets it once per invocation, so the descriptors stay open for its life.
"""

from __future__ import annotations

import contextlib
import os


class KeptFile:
    """A file opened on first use and re-read or re-written in place. ``close`` is idempotent;
    after it (or when the file vanished) reads return b"" and writes do nothing."""

    def __init__(self, path: str, flags: int) -> None:
        self._path = path
        self._flags = flags | os.O_CLOEXEC
        self._fd: int | None = None
        self._closed = False

    def _open(self) -> int | None:
        if self._fd is None and not self._closed:
            try:
                self._fd = os.open(self._path, self._flags)
            except OSError:
                self._closed = True
        return self._fd

    def read(self, size: int = 4096) -> bytes:
        fd = self._open()
        if fd is None:
            return b""
        try:
            return os.pread(fd, size, 0)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        fd = self._open()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, data)

    def put(self, data: bytes) -> None:
        """``write``, raising ``OSError`` when the file cannot be opened or written."""
        fd = self._open()
        if fd is None:
            raise FileNotFoundError(f"{self._path} is gone")
        os.write(fd, data)

    def close(self) -> None:
        self._closed = True
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def field_kb(status: bytes, key: bytes) -> int:
    """A ``Key:   123 kB`` value of /proc/<pid>/status, in kB (0 when absent)."""
    at = status.find(key + b":")
    if at < 0:
        return 0
    end = status.find(b"\n", at)
    parts = status[at + len(key) + 1 : end if end >= 0 else None].split()
    return int(parts[0]) if parts and parts[0].isdigit() else 0
