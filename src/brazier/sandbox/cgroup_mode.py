"""Which cgroup layout the host runs: detected once, as runc and Podman detect it.

- ``V2``: ``/sys/fs/cgroup`` is itself a cgroup2 filesystem (statfs magic 0x63677270): the
  unified hierarchy of Debian 11+, Ubuntu 21.10+, Fedora, RHEL 9.
- ``HYBRID``: v1 controller hierarchies under a tmpfs, plus a cgroup2 mount at
  ``/sys/fs/cgroup/unified`` (systemd's hybrid layout; this development machine).
- ``V1``: v1 hierarchies only.
"""

from __future__ import annotations

import enum
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


class CgroupMode(enum.Enum):
    V1 = "v1"
    HYBRID = "hybrid"
    V2 = "v2"


def _fstype(path: Path) -> str | None:
    """The type of the filesystem mounted at ``path`` (the last mount there is the visible one).

    Read from /proc/self/mounts: equivalent to statfs's f_type for this purpose, without ctypes.
    """
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    fstype = None
    for line in mounts:
        fields = line.split()
        if len(fields) >= 3 and fields[1] == str(path):
            fstype = fields[2]
    return fstype


def detect(root: Path = ROOT) -> CgroupMode:
    if _fstype(root) == "cgroup2":
        return CgroupMode.V2
    if _fstype(root / "unified") == "cgroup2":
        return CgroupMode.HYBRID
    return CgroupMode.V1
