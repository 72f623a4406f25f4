"""The sandbox boundary: what the worker may ask of an execution environment, and nothing more.

A :class:`SandboxFactory` starts :class:`Sandbox` es from a :class:`SandboxSpec`. The Linux
implementation lives in :mod:`brazier.sandbox.factory`; tests and fakes implement the same
protocols.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from brazier.model.egress import EgressPolicy

if TYPE_CHECKING:
    from .rootfs import TmpVolume

RUNTIME_API_ADDRESS = "127.0.0.1:9001"
# Descriptors the server holds per environment (measured ~11: its Runtime API listener and
# connection, output pipe, /tmp, the kernel files it keeps open), and the share of the open files
# limit environments may take (the rest: the server's own files and its clients' connections, one
# per request in flight). The server raises its limit for the account concurrency by these, and
# the factory starts no more environments than its limit allows.
FILES_PER_ENVIRONMENT = 12
ENVIRONMENT_FILES_SHARE = 0.75
SERVER_RESERVED_FILES = 256  # databases, logs, listeners, the zygotes' sockets


def environment_capacity(open_files: int) -> int:
    """How many environments an open files limit of ``open_files`` allows."""
    return max(1, int(open_files * ENVIRONMENT_FILES_SHARE) // FILES_PER_ENVIRONMENT)


def connection_capacity(open_files: int) -> int:
    """Client connections the rest of an open files limit of ``open_files`` allows (what
    environments may not take, less a reserve for the server's own files)."""
    return max(0, int(open_files * (1 - ENVIRONMENT_FILES_SHARE)) - SERVER_RESERVED_FILES)


def files_for_environments(environments: int) -> int:
    """The open files limit that allows ``environments`` (inverse of ``environment_capacity``)."""
    return math.ceil(environments * FILES_PER_ENVIRONMENT / ENVIRONMENT_FILES_SHARE)


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """Everything one execution environment needs. Validated at construction.

    ``env`` is the complete environment of the runtime process; the sandbox adds only
    ``AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001`` when it is absent. ``tmp``, when given, is the /tmp
    the caller keeps across resets of the same environment (see ``TmpVolume``); without it each
    sandbox gets a fresh one.
    """

    runtime: str
    code_dir: Path
    handler: str
    memory_mb: int = 128
    ephemeral_mb: int = 512
    env: Mapping[str, str] = field(default_factory=dict)
    layer_dir: Path | None = None
    tmp: TmpVolume | None = None
    egress: EgressPolicy | None = None  # None: the server's default (see sandbox/network)

    def __post_init__(self) -> None:
        if self.memory_mb < 16:
            raise ValueError(f"memory_mb must be at least 16, not {self.memory_mb}")
        if self.ephemeral_mb < 1:
            raise ValueError(f"ephemeral_mb must be at least 1, not {self.ephemeral_mb}")
        if not self.code_dir.is_absolute():
            raise ValueError(f"code_dir must be absolute: {self.code_dir}")
        for k, v in self.env.items():
            if "=" in k or "\0" in k or "\0" in v:
                raise ValueError(f"invalid environment variable {k!r}")

    def runtime_env(self) -> dict[str, str]:
        env = dict(self.env)
        env.setdefault("AWS_LAMBDA_RUNTIME_API", RUNTIME_API_ADDRESS)
        return env


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How PID 1 of a sandbox ended: ``exit_code`` or ``signal``; both None if unknown."""

    exit_code: int | None
    signal: int | None

    @classmethod
    def from_wait_status(cls, status: int) -> ExitStatus:
        import os

        if os.WIFSIGNALED(status):
            return cls(None, os.WTERMSIG(status))
        return cls(os.WEXITSTATUS(status), None)


@dataclass(frozen=True, slots=True)
class FactoryStatistics:
    zygotes: int  # live zygote processes
    pooled: int  # pre-forked environments waiting for a spec
    running: int  # started and not yet killed
    started: int  # start() calls that succeeded
    started_from_pool: int


class Sandbox(Protocol):
    """One execution environment: PID 1 of its own namespaces and cgroups."""

    @property
    def sandbox_id(self) -> str: ...

    @property
    def pid(self) -> int:
        """Host pid of the sandbox's PID 1 (the runtime process)."""
        ...

    @property
    def listener(self) -> socket.socket:
        """A non-blocking listening TCP socket bound to 127.0.0.1:9001 *inside* the sandbox's
        network namespace. Accept runtime connections on it. Owned by the sandbox: closed by kill().
        """
        ...

    @property
    def output_fd(self) -> int:
        """Read end (non-blocking) of the pipe carrying the merged stdout/stderr of every
        process inside. EOF once they are all gone. Valid until kill() returns."""
        ...

    async def read_output(self, max_bytes: int = 65536) -> bytes:
        """Wait for and return the next chunk of output; b"" at EOF or after kill()."""
        ...

    async def wait(self) -> ExitStatus:
        """Resolve when PID 1 is gone (and with it every process of the sandbox). Idempotent."""
        ...

    async def freeze(self) -> None:
        """Stop every process (cgroup freezer) and return once they are frozen. Idempotent.
        A no-op after kill()."""
        ...

    async def thaw(self) -> None:
        """Undo freeze(). Idempotent; a no-op after kill()."""
        ...

    def memory_peak_bytes(self) -> int:
        """Peak memory since start or the last reset: max(cgroup peak minus tmpfs pages, VmHWM of
        PID 1). 0 after kill()."""
        ...

    def reset_memory_peak(self) -> None:
        """Start a new peak window (per invoke). Idempotent; a no-op after kill()."""
        ...

    def oom_killed(self) -> bool:
        """True if the kernel OOM killer killed a process of this sandbox. Stays true after the
        sandbox exits, until kill() removes the cgroup (then it keeps its last known value)."""
        ...

    def end_init_boost(self) -> None:
        """Init runs with all the CPU it can use (Lambda boosts INIT); from now on apply the
        share proportional to memory. Idempotent; a no-op after kill()."""
        ...

    def cpu_time_ns(self) -> int:
        """CPU time consumed by every process of the sandbox (cpuacct.usage)."""
        ...

    async def kill(self) -> None:
        """SIGKILL every process via the cgroup, reap PID 1, close the listener and remove the
        cgroups. Idempotent; wait() resolves before it returns."""
        ...


class SandboxFactory(Protocol):
    async def start(self, spec: SandboxSpec) -> Sandbox:
        """Start an environment and return once its runtime process runs (before it initialises).

        Not idempotent: every call starts a new sandbox, owned by the caller until kill().
        Raises RuntimeUnavailable, SandboxStartError (``code`` is the Lambda error type),
        SandboxCapacityExceeded when no more environments can start now (transient), or
        SandboxUnavailable once the factory is closed.
        """
        ...

    def statistics(self) -> FactoryStatistics:
        """A snapshot of the factory's counters."""
        ...

    async def prewarm(self, runtimes: Iterable[str]) -> list[str]:
        """Start zygotes and pools for these runtimes ahead of their first use; runtimes the
        machine lacks are skipped. Idempotent. Returns the runtimes started."""
        ...

    async def aclose(self) -> None:
        """Kill every zygote, pooled and running sandbox and remove every cgroup. Idempotent."""
        ...
