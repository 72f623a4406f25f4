"""brazier.sandbox: Linux execution environments (namespaces, cgroups, seccomp, zygotes)."""

from .base import (
    ExitStatus,
    FactoryStatistics,
    Sandbox,
    SandboxFactory,
    SandboxSpec,
    connection_capacity,
    environment_capacity,
    files_for_environments,
)
from .errors import (
    RuntimeUnavailable,
    SandboxCapacityExceeded,
    SandboxError,
    SandboxStartError,
    SandboxUnavailable,
)
from .factory import LinuxSandboxFactory, open_sandbox_factory
from .rootfs import TmpVolume

__all__ = [
    "ExitStatus",
    "FactoryStatistics",
    "LinuxSandboxFactory",
    "RuntimeUnavailable",
    "Sandbox",
    "SandboxCapacityExceeded",
    "SandboxError",
    "SandboxFactory",
    "SandboxSpec",
    "SandboxStartError",
    "SandboxUnavailable",
    "TmpVolume",
    "connection_capacity",
    "environment_capacity",
    "files_for_environments",
    "open_sandbox_factory",
]
