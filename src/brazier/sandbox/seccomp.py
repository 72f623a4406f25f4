"""The seccomp policy, compiled once on the host with libseccomp (pyseccomp) into classic BPF.

The zygote loads the exported program with a bare ``prctl(PR_SET_SECCOMP)`` so that the in-sandbox
code stays stdlib-only. Policy (decision 0028): an *allow-list* whose default action fails with
EPERM. ``ALLOWED`` is Docker's default profile (moby ``profiles/seccomp/default.json``: the calls
it allows to a container without added capabilities), less the calls in ``REFUSED`` that brazier
refused before (decision 0017) and that a function has no use for. Whatever the kernel's sysctls
(unprivileged user namespaces, io_uring, bpf, perf_event_paranoid), a function cannot:

* create namespaces: ``unshare`` and ``setns`` are not allowed; ``clone`` only without any
  CLONE_NEW* flag; ``clone3`` fails with ENOSYS so that libc falls back to ``clone`` (clone3
  passes its flags in memory, out of a classic filter's reach), as Docker does;
* use io_uring, bpf, perf_event_open, userfaultfd, the key rings or the mount API, old or new;
* open sockets of a family other than AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK (glibc's
  getaddrinfo and if_nameindex use NETLINK_ROUTE): any other, AF_VSOCK above all (network
  namespaces do not confine it; on a VM host it reaches the hypervisor's side) and AF_PACKET,
  fails with EAFNOSUPPORT, as on a kernel without it.

The filter is installed by the sandbox's C (and, before it execs ``_brazier_init``, by B) as the
last privileged step of the drop (``_brazier_child._finish_drop``): after it only ``umask`` and
``execve`` run, both allowed. A call from another ABI (i386's ``int 0x80``, x32) kills the process
(libseccomp's bad-arch action): the list is for the native one.
"""

from __future__ import annotations

import contextlib
import errno
import platform
import tempfile

import pyseccomp

# Docker's default allow-list (moby profiles/seccomp/default.json, 2024: the unconditional
# "SCMP_ACT_ALLOW" names plus the per-arch ones for amd64 and arm64), minus REFUSED. Names the
# native arch lacks (the 32-bit variants) are skipped when the filter is compiled.
# fmt: off
ALLOWED = (
    "accept", "accept4", "access", "alarm", "bind", "brk", "cachestat", "capget", "capset",
    "chdir", "chmod", "chown", "chown32", "clock_getres", "clock_getres_time64", "clock_gettime",
    "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
    "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old",
    "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
    "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
    "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr",
    "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64",
    "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue",
    "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd",
    "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid",
    "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp",
    "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
    "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
    "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel",
    "ioctl", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
    "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr",
    "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek",
    "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "nanosleep", "newfstatat", "_newselect", "open", "openat",
    "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv",
    "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64",
    "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv",
    "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr",
    "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
    "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
    "seccomp", "select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send",
    "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32",
    "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
    "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
    "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
    "sigprocmask", "sigreturn", "splice", "stat", "stat64", "statfs", "statfs64", "statx",
    "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill",
    "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
    "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate",
    "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write",
    "writev",
    # Docker's per-arch additions (amd64: arch_prctl, modify_ldt; arm64: none needed here).
    "arch_prctl", "modify_ldt",
)

# Refused (EPERM, the default action): everything brazier refused before (decision 0017) and the
# calls issue 13 names. Docker allows a few of these (adjtimex read-only, name_to_handle_at,
# ptrace and process_vm_* on kernels >= 4.8); a function has
# no use for them, so they stay out. Listed to be tested and to keep ALLOWED honest.
REFUSED = (
    "mount", "umount2", "pivot_root", "chroot", "ptrace", "process_vm_readv", "process_vm_writev",
    "kexec_load", "kexec_file_load", "bpf", "keyctl", "add_key", "request_key", "unshare", "setns",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff",
    "perf_event_open", "userfaultfd", "open_by_handle_at", "name_to_handle_at", "acct", "quotactl",
    "syslog", "iopl", "ioperm", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "vhangup", "fsopen", "fsmount", "fsconfig", "fspick", "move_mount", "open_tree",
    "mount_setattr", "lookup_dcookie", "uselib", "nfsservctl", "kcmp", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "pidfd_getfd", "sethostname",
    "setdomainname", "fanotify_init", "mbind", "set_mempolicy", "get_mempolicy", "migrate_pages",
    "move_pages",
)
# fmt: on

# Numbers of calls newer than what an older libseccomp (Debian 12 ships 2.5.4) can name. Since
# Linux 5.1 (424, pidfd_send_signal) new calls share one number on x86_64 and arm64.
_NEW_SYSCALLS = {
    "process_mrelease": 448, "futex_waitv": 449, "cachestat": 451, "fchmodat2": 452,
    "map_shadow_stack": 453, "futex_wake": 454, "futex_wait": 455, "futex_requeue": 456,
}  # fmt: skip
_UNIFIED_TABLE_ARCHES = frozenset({"x86_64", "aarch64"})

# Every CLONE_NEW* flag that fits clone()'s first argument (CLONE_NEWTIME, 0x80, overlaps the
# exit-signal byte of clone() and is only reachable through clone3 and unshare, both refused).
CLONE_NEW_FLAGS = (
    0x00020000,  # NEWNS
    0x02000000,  # NEWCGROUP
    0x04000000,  # NEWUTS
    0x08000000,  # NEWIPC
    0x10000000,  # NEWUSER
    0x20000000,  # NEWPID
    0x40000000,  # NEWNET
)
_CLONE_NEW_MASK = sum(CLONE_NEW_FLAGS)

# personality() as Docker allows it: PER_LINUX, PER_LINUX32, UNAME26 variants and the query.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# The only address families a sandbox may create sockets of: AF_UNIX, AF_INET, AF_INET6 and
# AF_NETLINK (glibc's getaddrinfo and if_nameindex use NETLINK_ROUTE).
SOCKET_FAMILIES = frozenset({1, 2, 10, 16})
_MAX_FAMILY = 16  # every family number above it is refused by one comparison


def _syscall(name: str) -> int | None:
    """The native number of ``name``, or None where the native arch has no such call."""
    try:
        return int(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name))
    except (OSError, ValueError):
        if platform.machine() in _UNIFIED_TABLE_ARCHES:
            return _NEW_SYSCALLS.get(name)
        return None


def build_filter_bpf() -> bytes:
    """Compile the policy for the native architecture. Pure: the same bytes on every call."""
    overlap = set(ALLOWED) & set(REFUSED)
    if overlap:
        raise RuntimeError(f"seccomp: both allowed and refused: {sorted(overlap)}")
    filt = pyseccomp.SyscallFilter(pyseccomp.ERRNO(errno.EPERM))
    # A binary search on the syscall number (libseccomp >= 2.5) rather than a linear scan: a
    # 300-name list would otherwise cost the calls at its end ~300 instructions each.
    # libseccomp < 2.5 refuses the attribute: the linear program, as correct and a little slower.
    with contextlib.suppress(OSError):
        filt.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)
    allow = pyseccomp.ALLOW
    for name in ALLOWED:
        number = _syscall(name)
        if number is not None and number >= 0:  # negative: a pseudo-call (socketcall on x86_64)
            filt.add_rule(allow, number)
    for persona in PERSONALITIES:
        filt.add_rule(allow, "personality", pyseccomp.Arg(0, pyseccomp.EQ, persona))
    filt.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    # clone only with no CLONE_NEW* flag; with one it falls to the default (EPERM).
    filt.add_rule(allow, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, _CLONE_NEW_MASK, 0))
    no_family = pyseccomp.ERRNO(errno.EAFNOSUPPORT)
    for call in ("socket", "socketpair"):
        # Compared as 64-bit values: a family with high bits set (the kernel reads an int) is
        # above _MAX_FAMILY, so refused too.
        filt.add_rule(no_family, call, pyseccomp.Arg(0, pyseccomp.GT, _MAX_FAMILY))
        for family in range(_MAX_FAMILY + 1):
            action = allow if family in SOCKET_FAMILIES else no_family
            filt.add_rule(action, call, pyseccomp.Arg(0, pyseccomp.EQ, family))
    with tempfile.TemporaryFile() as f:
        filt.export_bpf(f)
        f.seek(0)
        bpf: bytes = f.read()
    if not bpf or len(bpf) % 8:
        raise RuntimeError(f"libseccomp exported a malformed program ({len(bpf)} bytes)")
    return bpf
