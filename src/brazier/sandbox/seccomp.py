"""The seccomp policy, compiled once on the host with libseccomp (pyseccomp) into classic BPF.

The zygote loads the exported program with a bare ``prctl(PR_SET_SECCOMP)`` so that the in-sandbox
code stays stdlib-only. Policy (isolation notes, section 2.1): default ALLOW with a deny-list that
fails with EPERM, because Lambda runtimes need the whole ordinary syscall surface; an allow-list
would be stricter and is the obvious next step. ``clone3`` fails with ENOSYS so that glibc falls
back to ``clone``, whose flags a classic filter *can* inspect (clone3 passes them in memory).
``socket`` and ``socketpair`` accept only the address families a function has a use for (see
``SOCKET_FAMILIES``); any other (AF_VSOCK above all: network namespaces do not confine it, and on
a VM host it reaches the hypervisor's side) fails with EAFNOSUPPORT, as on a kernel without it.
"""

from __future__ import annotations

import errno
import tempfile

import pyseccomp

# fmt: off
DENIED = (
    "mount", "umount2", "pivot_root", "chroot", "ptrace", "process_vm_readv", "process_vm_writev",
    "kexec_load", "kexec_file_load", "bpf", "keyctl", "add_key", "request_key", "unshare", "setns",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff",
    "perf_event_open", "userfaultfd", "open_by_handle_at", "name_to_handle_at", "acct", "quotactl",
    "syslog", "iopl", "ioperm", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "vhangup", "fsopen", "fsmount", "fsconfig", "fspick", "move_mount", "open_tree",
    "mount_setattr", "lookup_dcookie", "uselib", "nfsservctl", "kcmp", "io_uring_setup",
    "io_uring_enter", "io_uring_register",
)
# fmt: on

# Every CLONE_NEW* flag that fits clone()'s first argument (CLONE_NEWTIME, 0x80, overlaps the
# exit-signal byte of clone() and is only reachable through clone3 and unshare, both denied).
CLONE_NEW_FLAGS = (
    0x00020000,  # NEWNS
    0x02000000,  # NEWCGROUP
    0x04000000,  # NEWUTS
    0x08000000,  # NEWIPC
    0x10000000,  # NEWUSER
    0x20000000,  # NEWPID
    0x40000000,  # NEWNET
)


# The only address families a sandbox may create sockets of: AF_UNIX, AF_INET, AF_INET6 and
# AF_NETLINK (glibc's getaddrinfo and if_nameindex use NETLINK_ROUTE).
SOCKET_FAMILIES = frozenset({1, 2, 10, 16})
_MAX_FAMILY = 16  # every family number above it is refused by one comparison


def build_filter_bpf() -> bytes:
    """Compile the policy for the native architecture. Pure: the same bytes on every call."""
    filt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    eperm = pyseccomp.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            filt.add_rule(eperm, name)
        except (OSError, ValueError):  # a syscall this libseccomp or arch does not know
            continue
    filt.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    for flag in CLONE_NEW_FLAGS:
        filt.add_rule(eperm, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    no_family = pyseccomp.ERRNO(errno.EAFNOSUPPORT)
    for call in ("socket", "socketpair"):
        # Compared as 64-bit values: a family with high bits set (the kernel reads an int) is
        # above _MAX_FAMILY, so refused too.
        filt.add_rule(no_family, call, pyseccomp.Arg(0, pyseccomp.GT, _MAX_FAMILY))
        for family in range(_MAX_FAMILY):
            if family not in SOCKET_FAMILIES:
                filt.add_rule(no_family, call, pyseccomp.Arg(0, pyseccomp.EQ, family))
    with tempfile.TemporaryFile() as f:
        filt.export_bpf(f)
        f.seek(0)
        bpf: bytes = f.read()
    if not bpf or len(bpf) % 8:
        raise RuntimeError(f"libseccomp exported a malformed program ({len(bpf)} bytes)")
    return bpf
