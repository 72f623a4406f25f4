"""The boundary between the invoke service and the workers that run environments.

In single-node mode the one worker lives in the same process; in cluster mode a client speaks to
remote workers over HTTP. Both implement :class:`WorkerClient`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from brazier.model.invocation import FunctionSpec, InvokeRequest, InvokeResult, WorkerStatistics


class WorkerClient(Protocol):
    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        """Run one invocation to completion in an environment of ``request.spec``.

        Function failures (errors, crashes, timeouts, out of memory) are results, not exceptions.
        Raises a ``brazier.model.errors.LambdaError`` only when the platform cannot run the
        function at all (for example its runtime is missing on this machine). Not idempotent.
        """
        ...

    async def provision(self, spec: FunctionSpec, count: int) -> int:
        """Keep ``count`` initialised environments of a provisioned ``spec`` (0 releases them);
        returns how many are ready. Idempotent."""
        ...

    async def retire(self, version: tuple[str, str, str, str], keep: str | None) -> None:
        """Stop the environments of one function version (account, region, name, version) whose
        revision is not ``keep`` (None: all of them, e.g. the version was deleted). Busy ones
        finish their invocation first. Idempotent."""
        ...

    def statistics(self) -> WorkerStatistics:
        """A snapshot of the worker's counters."""
        ...

    def paths_in_use(self) -> set[Path]:
        """The code and /opt directories its environments run from (busy, idle or starting):
        code collection must not remove them."""
        ...


class Scheduler:
    """Chooses the worker for an invocation. Single node: always the local one."""

    def __init__(self, workers: list[WorkerClient]) -> None:
        if not workers:
            raise ValueError("a scheduler needs at least one worker")
        self._workers = workers

    def choose(self, spec: FunctionSpec) -> WorkerClient:
        # Affinity by function keeps warm environments warm; with one worker it is that one.
        return self._workers[hash(spec.key) % len(self._workers)]

    @property
    def workers(self) -> list[WorkerClient]:
        return list(self._workers)
