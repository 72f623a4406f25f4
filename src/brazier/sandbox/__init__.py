"""brazier.sandbox: Linux execution environments (namespaces, cgroups, seccomp, zygotes)."""

from .base import ExitStatus, FactoryStatistics, Sandbox, SandboxFactory, SandboxSpec
from .errors import RuntimeUnavailable, SandboxError, SandboxStartError, SandboxUnavailable
from .factory import LinuxSandboxFactory, open_sandbox_factory
from .rootfs import TmpVolume

__all__ = [
    "ExitStatus",
    "FactoryStatistics",
    "LinuxSandboxFactory",
    "RuntimeUnavailable",
    "Sandbox",
    "SandboxError",
    "SandboxFactory",
    "SandboxSpec",
    "SandboxStartError",
    "SandboxUnavailable",
    "TmpVolume",
    "open_sandbox_factory",
]
