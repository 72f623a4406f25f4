"""The server's open files: raise the soft limit, size the descriptor table, cap connections."""

from __future__ import annotations

import logging
import os
from pathlib import Path


def raise_open_files_limit(environments: int) -> int:
    """Soft limit up to the hard one. Each environment holds ~11 descriptors in the server (its
    Runtime API listener and connection, its output pipe, its /tmp, the kernel files it keeps
    open): the usual soft limit of 1,024 would stop a server at ~90 environments. (Sandboxes set
    their own limit, 1,024, as Lambda's.) Warns when even the hard limit is too low for
    ``environments`` (the account concurrency). Returns the descriptors to plan for: enough for
    ``environments``, within the limit."""
    import resource

    from brazier.sandbox import environment_capacity, files_for_environments

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard
    if hard == resource.RLIM_INFINITY:  # the kernel caps it at fs.nr_open
        try:
            want = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            want = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (OSError, ValueError):
            logging.getLogger(__name__).warning(
                "cannot raise the open files limit from %d: environments may run out", soft
            )
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    planned = files_for_environments(environments)
    if soft != resource.RLIM_INFINITY and soft < planned:
        logging.getLogger(__name__).warning(
            "the open files limit (%d) allows about %d environments, fewer than the account"
            " concurrency (%d): raise it (ulimit -n, or LimitNOFILE= in a systemd unit)",
            soft, environment_capacity(soft), environments,
        )  # fmt: skip
    return planned if soft == resource.RLIM_INFINITY else min(soft, planned)


def connection_cap(account_concurrency: int) -> int:
    """Client connections open at once: the descriptors environments may not take (a quarter of
    the open files limit), and never fewer than the account concurrency plus room for
    control-plane calls. Past it, new connections are closed at once (api/connections.py)."""
    import resource

    from brazier.api import limits
    from brazier.sandbox import connection_capacity

    floor = account_concurrency + limits.MAX_CONNECTIONS_EXTRA
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return max(floor, connection_capacity(1 << 20))
    return max(floor, connection_capacity(soft))


def presize_fd_table(descriptors: int) -> None:
    """Grow the process's descriptor table now to hold ``descriptors``, while the server has a
    single thread. The kernel grows it by doubling as environments open descriptors, and in a
    process with more than one thread every growth waits for an RCU grace period (10-20 ms
    here, ftrace: expand_files -> synchronize_rcu) inside whatever call opened the descriptor,
    with the event loop stopped: one cold start in a run of them took that much longer at each
    doubling. The table is ~8 bytes per slot (128 KiB for the default account concurrency)."""
    import fcntl

    if descriptors <= 64:
        return
    try:
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        # The lowest free descriptor from ``descriptors - 1`` up: makes the table that large
        # without touching any descriptor in use; closed at once, the table stays.
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, descriptors - 1)
        os.close(high)
    except OSError:
        pass  # past the limit: the table grows as it used to
    finally:
        os.close(fd)
