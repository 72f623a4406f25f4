"""Errors of the sandbox layer. OSErrors from clone, mount and cgroups are translated here."""

from __future__ import annotations

from brazier.model.errors import BrazierError


class SandboxError(BrazierError):
    """Base of the sandbox layer's errors."""


class SandboxUnavailable(SandboxError):
    """This machine cannot run sandboxes (not root, no cgroup v1 controllers, no namespaces...),
    or the factory is closed."""


class SandboxCapacityExceeded(SandboxUnavailable):
    """No environment can start now: the server holds as many as its descriptors allow, or
    starts are queued for longer than ``START_QUEUE_TIMEOUT``. Transient: the invoke is
    throttled (429), as Lambda throttles beyond what it can scale to."""


class RuntimeUnavailable(SandboxError):
    """The runtime is unknown or its interpreter is not installed on this machine."""

    def __init__(self, runtime: str, reason: str) -> None:
        super().__init__(f"{runtime} is not available: {reason}")
        self.runtime = runtime
        self.reason = reason


class SandboxStartError(SandboxError):
    """The environment could not be started.

    ``code`` is the Lambda error type the worker should report for the failed init:
    ``Runtime.InvalidEntrypoint`` when no bootstrap (or runtime module) exists or it cannot be
    executed, ``Sandbox.Failure`` when the sandbox itself could not be built.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
