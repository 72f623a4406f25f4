"""The server's delegated subtree on a unified (v2) cgroup host.

Under systemd a service may create cgroups only below its own, and only when the unit has
``Delegate=yes`` (or was started by ``systemd-run --scope -p Delegate=yes``). v2's "no internal
processes" rule then allows controllers in ``<own>/cgroup.subtree_control`` only once ``<own>``
holds no process itself: the server first moves the processes of its cgroup into the leaf
``<own>/brazier-server`` (``DelegateSubgroup=`` does this in systemd >= 254; Debian 12 has 252),
then enables ``+cpu +memory +pids``. The factories' cgroups are then siblings of that leaf.

``delegate`` is idempotent: a process already in ``brazier-server`` (a second factory, a
restarted thread) finds the same base. Failure is one ``DelegationError`` whose message says
what to run, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from .errors import SandboxUnavailable

ROOT = Path("/sys/fs/cgroup")
SERVER_LEAF = "brazier-server"
CONTROLLERS = ("cpu", "memory", "pids")
HINT = (
    "start it in a delegated cgroup: `systemd-run --scope -p Delegate=yes brazier server ...`"
    " or install contrib/brazier.service (Delegate=yes)"
)


class DelegationError(SandboxUnavailable):
    """The server's cgroup cannot be used for sandboxes (not delegated to it)."""


def own_cgroup(root: Path = ROOT, proc_cgroup: str = "/proc/self/cgroup") -> Path:
    """This process's cgroup on the unified hierarchy (the ``0::/path`` line)."""
    with open(proc_cgroup) as f:
        for line in f:
            hid, _, rest = line.rstrip("\n").partition(":")
            controllers, _, path = rest.partition(":")
            if hid == "0" and controllers == "":
                return root / path.lstrip("/")
    raise DelegationError(f"no cgroup v2 entry in {proc_cgroup}; {HINT}")


def delegated_base(own: Path) -> Path:
    """Where factories' cgroups go: the parent of the server's leaf, or ``own`` itself."""
    return own.parent if own.name == SERVER_LEAF else own


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def delegate(root: Path = ROOT, proc_cgroup: str = "/proc/self/cgroup") -> Path:
    """Make this process's cgroup usable for sandboxes; returns the base for factories."""
    own = own_cgroup(root, proc_cgroup)
    base = delegated_base(own)
    try:
        available = (base / "cgroup.controllers").read_text().split()
        missing = [c for c in CONTROLLERS if c not in available]
        if missing:
            raise DelegationError(
                f"cgroup {base} lacks the controllers {' '.join(missing)}; {HINT}"
            )
        enabled = (base / "cgroup.subtree_control").read_text().split()
        if all(c in enabled for c in CONTROLLERS):
            return base
        if base != root:  # the root cgroup is exempt from the no-internal-processes rule
            leaf = base / SERVER_LEAF
            # SAFETY: a leaf in our own (delegated) cgroup, for the processes already in it.
            leaf.mkdir(exist_ok=True)
            for pid in (base / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    # SAFETY: moves a process of our own cgroup one level down, into our leaf.
                    _write(leaf / "cgroup.procs", pid)
        # SAFETY: enables controllers for the children of our own delegated cgroup only.
        _write(base / "cgroup.subtree_control", " ".join("+" + c for c in CONTROLLERS))
    except DelegationError:
        raise
    except OSError as e:
        reason = errno.errorcode.get(e.errno or 0, "") or e.strerror
        raise DelegationError(f"cannot use cgroup {base} ({reason}: {e.strerror}); {HINT}") from e
    return base
