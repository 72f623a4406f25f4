"""The runtimes brazier knows, and what each needs from the machine."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class RuntimeFamily(enum.Enum):
    PYTHON = "python"
    NODE = "nodejs"
    PROVIDED = "provided"


@dataclass(frozen=True, slots=True)
class RuntimeInfo:
    name: str  # the Lambda identifier, e.g. "python3.11"
    family: RuntimeFamily
    version: str  # "3.11", "20", "al2023"

    @property
    def execution_env(self) -> str | None:
        """``AWS_EXECUTION_ENV``; not set for ``provided`` runtimes."""
        if self.family is RuntimeFamily.PROVIDED:
            return None
        return f"AWS_Lambda_{self.name}"


SUPPORTED: dict[str, RuntimeInfo] = {
    **{
        f"python3.{m}": RuntimeInfo(f"python3.{m}", RuntimeFamily.PYTHON, f"3.{m}")
        for m in range(9, 15)
    },
    **{
        f"nodejs{v}.x": RuntimeInfo(f"nodejs{v}.x", RuntimeFamily.NODE, str(v))
        for v in (18, 20, 22, 24)
    },
    "provided.al2023": RuntimeInfo("provided.al2023", RuntimeFamily.PROVIDED, "al2023"),
    "provided.al2": RuntimeInfo("provided.al2", RuntimeFamily.PROVIDED, "al2"),
}

# Identifiers Lambda has retired for creation; the API refuses them with Lambda's message.
DEPRECATED: frozenset[str] = frozenset(
    {
        "provided", "python2.7", "python3.6", "python3.7", "python3.8",
        "nodejs", "nodejs4.3", "nodejs4.3-edge", "nodejs6.10", "nodejs8.10", "nodejs10.x",
        "nodejs12.x", "nodejs14.x", "nodejs16.x",
        "java8", "go1.x", "ruby2.5", "ruby2.7", "dotnetcore1.0", "dotnetcore2.0",
        "dotnetcore2.1", "dotnetcore3.1", "dotnet6",
    }
)  # fmt: skip


# The Runtime enum as Lambda states it when refusing an identifier it does not know, in Lambda's
# order (recorded 2026-12-01, test_lambda_api.snapshot.json, test_create_lambda_exceptions).
LAMBDA_RUNTIME_ENUM: tuple[str, ...] = (
    "nodejs20.x", "python3.14", "provided.al2023", "python3.12", "python3.13", "nodejs24.x",
    "nodejs22.x", "java25", "python3.10", "python3.11", "java21", "ruby3.3", "ruby3.4", "ruby3.2",
    "python3.8", "python3.9", "java17", "nodejs16.x", "dotnet10", "dotnet8", "java11", "dotnet6",
    "nodejs18.x", "provided.al2", "java8.al2",
)  # fmt: skip


def lookup(name: str) -> RuntimeInfo | None:
    return SUPPORTED.get(name)


class RuntimeHost(Protocol):
    """What this host can run: the control plane asks it when a function is created or
    updated (sandbox/discovery.py's ``Discovery`` answers for the local machine)."""

    def missing(self, runtime: str) -> str | None:
        """None when ``runtime`` can run here; otherwise why not and the fix (a StateReason)."""
        ...


class EveryRuntime:
    """A host that can run every supported runtime (in-process tests, remote workers)."""

    def missing(self, runtime: str) -> str | None:
        return None if runtime in SUPPORTED else f"{runtime} is not a runtime brazier knows"
