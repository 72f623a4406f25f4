"""One execution environment: a sandbox, its Runtime API session, its log stream and /tmp.

Lifecycle (refuses anything else)::

    NEW --start--> READY --invoke--> BUSY --done--> FINISHING --runtime's /next--> READY (frozen)
     ^                                 |                                      |
     +------------- reset -------------+----------- (timeout, crash, init error)

A reset kills the sandbox but keeps the environment: its log stream and /tmp survive, and the next
invoke re-initialises it (a cold start in a fresh sandbox), as Lambda does.
"""

from __future__ import annotations

import asyncio
import enum
import json
import math
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from brazier.model.egress import parse_egress
from brazier.model.errors import InvalidStateTransition
from brazier.model.invocation import FunctionSpec, InvokeRequest, InvokeResult, LogSink, Outcome
from brazier.model.sessions import SessionIssuer
from brazier.runtime_api.base import (
    FunctionError,
    FunctionResponse,
    InitError,
    Invocation,
    SessionAborted,
)
from brazier.runtime_api.server import RuntimeSession, open_runtime_session
from brazier.sandbox import (
    ExitStatus,
    Sandbox,
    SandboxFactory,
    SandboxSpec,
    SandboxStartError,
    TmpVolume,
)
from brazier.worker import logformat
from brazier.worker.logbuffer import IngestBucket, InvocationLog
from brazier.worker.runtime_env import build_environment

MAX_PAYLOAD = 6 * 1024 * 1024 + 100
_T = TypeVar("_T")
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class EnvState(enum.Enum):
    NEW = "new"  # no sandbox: never started, or reset
    READY = "ready"  # runtime parked in /next (frozen)
    BUSY = "busy"  # an invocation is running
    FINISHING = "finishing"  # result delivered, waiting for the runtime's next /next
    CLOSED = "closed"


_MOVES: dict[EnvState, frozenset[EnvState]] = {
    EnvState.NEW: frozenset({EnvState.BUSY, EnvState.READY, EnvState.CLOSED}),
    EnvState.READY: frozenset({EnvState.BUSY, EnvState.NEW, EnvState.CLOSED}),
    EnvState.BUSY: frozenset({EnvState.FINISHING, EnvState.NEW, EnvState.CLOSED}),
    EnvState.FINISHING: frozenset({EnvState.READY, EnvState.NEW, EnvState.CLOSED}),
    EnvState.CLOSED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why an invocation produced no runtime result. The environment is reset after it."""

    error_type: str
    status: str = "error"  # REPORT's Status: error | timeout
    body: bytes | None = None  # the runtime's own error body (init error), passed through
    message: str | None = None  # else: "RequestId: <id> Error: <message>"


class _Died(Exception):
    """The runtime process exited or the session failed while we waited on it."""


def _error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class Environment:
    def __init__(
        self,
        spec: FunctionSpec,
        factory: SandboxFactory,
        sink: LogSink,
        *,
        init_timeout: float,
        clock: Callable[[], float] = time.monotonic,
        log_quota: IngestBucket | None = None,
        sessions: SessionIssuer | None = None,
        endpoints: Mapping[str, str] | None = None,
    ) -> None:
        """``log_quota``: the function's log ingestion quota (shared by its environments).
        ``sessions`` mints this environment's credentials (revoked by ``aclose``); ``endpoints``
        are the ``AWS_ENDPOINT_URL_*`` variables its functions get (decision 0029)."""
        self.spec = spec
        self.env_id = uuid.uuid4().hex
        self.log_stream = logformat.stream_name(spec.version)
        self.state = EnvState.NEW
        self.last_used = clock()
        self._clock = clock
        self._factory = factory
        self._sink = sink
        self._tmp = TmpVolume(spec.ephemeral_mb)  # kept across resets, as Lambda keeps /tmp
        self._init_timeout = init_timeout
        self._sandbox: Sandbox | None = None
        self._session: RuntimeSession | None = None
        self._stack: AsyncExitStack | None = None
        self._exited: asyncio.Future[None] | None = None
        self._exit_status: ExitStatus | None = None
        self._lines = logformat.PlatformLines(spec.log_format, spec.system_log_level)
        self._log = InvocationLog(
            spec.log_group_key,
            self.log_stream,
            sink,
            bucket=log_quota,
            dropped_line=self._lines.logs_dropped,
        )
        self._frozen = False
        self._freezer: asyncio.Task[None] | None = None
        self._freeze_timer: asyncio.TimerHandle | None = None
        self._sessions = sessions
        self._credentials = sessions.issue(spec.account) if sessions is not None else None
        self._platform_env = dict(endpoints or {})
        if self._credentials is not None:
            self._platform_env.update(self._credentials.as_environment())

    # -- state -----------------------------------------------------------------------------------

    def _move(self, new: EnvState) -> None:
        if new not in _MOVES[self.state]:
            raise InvalidStateTransition(f"environment {self.state.value} -> {new.value}")
        self.state = new

    # -- start and reset -------------------------------------------------------------------------

    async def _start(self) -> tuple[float, _Failure | None]:
        """Start a sandbox and wait for the runtime's init: (init duration ms, failure)."""
        spec = self.spec
        self._log.platform(
            self._lines.init_start(spec.runtime, spec.region, spec.name, spec.version)
        )
        t0 = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - t0) * 1000

        try:
            sandbox = await self._factory.start(
                SandboxSpec(
                    runtime=spec.runtime,
                    code_dir=spec.code_dir,
                    handler=spec.handler,
                    memory_mb=spec.memory_mb,
                    ephemeral_mb=spec.ephemeral_mb,
                    env=build_environment(spec, self.log_stream, self._platform_env),
                    layer_dir=spec.layer_dir,
                    tmp=self._tmp,
                    egress=parse_egress(spec.egress) if spec.egress is not None else None,
                )
            )
        except SandboxStartError as exc:
            self._log.platform(self._lines.init_report(elapsed(), "init", "error", exc.code))
            return elapsed(), _Failure(exc.code, message=exc.message)
        self._sandbox = sandbox
        asyncio.get_running_loop().add_reader(sandbox.output_fd, self._on_output)
        self._exited = asyncio.ensure_future(self._watch_exit(sandbox))
        self._stack = AsyncExitStack()
        session = self._session = await self._stack.enter_async_context(
            open_runtime_session(sandbox.listener, max_payload_size=MAX_PAYLOAD)
        )
        self._exited.add_done_callback(lambda _: session.abort("the runtime exited"))
        try:
            outcome = await self._race(self._session.wait_init(), self._init_timeout)
        except TimeoutError:
            self._log.platform(self._lines.init_report(elapsed(), "init", "timeout", None))
            return elapsed(), _Failure("Sandbox.Timedout", status="timeout")
        except _Died:
            self._drain_output()
            error_type, message = self._exit_reason()
            self._log.platform(self._lines.init_report(elapsed(), "init", "error", error_type))
            return elapsed(), _Failure(error_type, message=message)
        sandbox.end_init_boost()
        if isinstance(outcome, InitError):
            self._drain_output()
            self._log.platform(
                self._lines.init_report(elapsed(), "init", "error", outcome.error_type)
            )
            return elapsed(), _Failure(outcome.error_type, body=outcome.body)
        return elapsed(), None

    async def _watch_exit(self, sandbox: Sandbox) -> None:
        self._exit_status = await sandbox.wait()

    def _on_output(self) -> None:
        sandbox = self._sandbox
        if sandbox is None:
            return
        try:
            data = os.read(sandbox.output_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(sandbox.output_fd)
            return
        self._log.feed(data)

    def _drain_output(self) -> None:
        """Take every byte the runtime wrote before it answered (already in the pipe)."""
        sandbox = self._sandbox
        if sandbox is None:
            return
        while True:
            try:
                data = os.read(sandbox.output_fd, 65536)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            self._log.feed(data)

    async def _race(self, aw: Awaitable[_T], within: float) -> _T:
        """Await a session call unless the runtime dies first (``_Died``) or time runs out.

        The runtime's exit aborts the session (a callback set in ``_start``), which fails the
        call with SessionAborted; so this needs no task or ``asyncio.wait`` of its own, which
        matters on the warm path."""
        try:
            async with asyncio.timeout(max(within, 0.0)):
                return await aw
        except SessionAborted:
            if self._exited is not None and self._exited.done():
                raise _Died from None
            raise

    def _exit_reason(self) -> tuple[str, str]:
        """Lambda's error type and message for a runtime that exited (reference §1.5)."""
        sandbox = self._sandbox
        if sandbox is not None and sandbox.oom_killed():
            return "Runtime.OutOfMemory", "Runtime exited with error: signal: killed"
        status = self._exit_status
        if status is not None and status.signal is not None:
            name = (signal.strsignal(status.signal) or f"signal {status.signal}").lower()
            return "Runtime.ExitError", f"Runtime exited with error: signal: {name}"
        if status is not None and status.exit_code:
            return "Runtime.ExitError", f"Runtime exited with error: exit status {status.exit_code}"
        return "Runtime.ExitError", "Runtime exited without providing a reason"

    async def reset(self) -> None:
        """Kill the sandbox; keep the environment (log stream, /tmp) for a re-init."""
        self._cancel_freeze()
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            with suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(sandbox.output_fd)
            if self._session is not None:
                self._session.abort("environment reset")
            await sandbox.kill()
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = None
        self._session = None
        if self._exited is not None and not self._exited.done():
            self._exited.cancel()
        self._exited = None
        self._exit_status = None
        self._frozen = False
        if self.state is not EnvState.CLOSED:
            self.state = EnvState.NEW

    async def prewarm(self) -> bool:
        """Initialise before any invocation (provisioned concurrency): True when the runtime is
        READY; on an init failure the environment is reset and False returned."""
        if self.state is not EnvState.NEW:
            return self.state is EnvState.READY
        self._log.begin()
        init_ms, failure = await self._start()
        self._log.finish()
        if failure is not None:
            await self.reset()
            return False
        self._log.platform(
            self._lines.init_report(init_ms, "init", "success", None)
            if self.spec.log_format == "JSON"
            else None
        )
        self._move(EnvState.READY)
        self.last_used = self._clock()
        return True

    async def aclose(self) -> None:
        """Kill the sandbox and release /tmp. Idempotent."""
        if self._credentials is not None and self._sessions is not None:
            self._sessions.revoke(self._credentials.access_key_id)
        await self.reset()
        self.state = EnvState.CLOSED
        await self._tmp.aclose()

    # -- invoke ----------------------------------------------------------------------------------

    async def invoke(self, req: InvokeRequest) -> InvokeResult:
        """Run one invocation. Always returns a result; failures reset the environment."""
        if self._exited is not None and self._exited.done():
            # Its runtime died while idle (or its zygote did, which reports its exit): nothing
            # was delivered to it, so this invocation is not its failure. Start afresh.
            await self.reset()
        self._move(EnvState.BUSY)
        self.last_used = self._clock()
        spec = self.spec
        deadline = time.time() + spec.timeout_s
        self._log.begin()
        init_ms: float | None = None
        failure: _Failure | None = None
        if self._sandbox is None:
            init_ms, failure = await self._start()
        self._log.platform(self._lines.start(req.request_id, spec.version))
        t0 = time.perf_counter()
        result: FunctionResponse | FunctionError | None = None
        if failure is None:
            outcome = await self._run(req, deadline)
            if isinstance(outcome, _Failure):
                failure = outcome
            else:
                result = outcome
        duration = (time.perf_counter() - t0) * 1000
        self._drain_output()
        memory = self._max_memory_mb()
        status = failure.status if failure else None
        error_type = failure.error_type if failure else None
        self._log.platform(
            self._lines.end(req.request_id, status or "success", duration, error_type)
        )
        self._log.platform(
            self._lines.report(
                req.request_id,
                duration_ms=duration,
                memory_mb=spec.memory_mb,
                max_memory_mb=memory,
                init_ms=init_ms,
                status=status,
                error_type=error_type,
                trace_id=req.trace_id,
            )
        )
        tail = self._log.finish()
        if failure is not None:
            await self.reset()
        else:
            self._move(EnvState.FINISHING)
        if isinstance(result, FunctionResponse):
            payload, ok, ctype = result.body, Outcome.SUCCESS, result.content_type
        elif isinstance(result, FunctionError):
            payload, ok, ctype = result.body, Outcome.FUNCTION_ERROR, "application/json"
        else:
            assert failure is not None
            payload, ok, ctype = self._failure_body(req, failure), Outcome.FUNCTION_ERROR, None
        return InvokeResult(
            outcome=ok,
            payload=payload,
            executed_version=spec.version,
            log_tail=tail,
            error_type=failure.error_type if failure else None,
            content_type=ctype or "application/json",
            duration_ms=duration,
            billed_ms=logformat.billed(duration, init_ms),
            init_ms=init_ms,
            max_memory_mb=memory,
        )

    async def _run(
        self, req: InvokeRequest, deadline: float
    ) -> FunctionResponse | FunctionError | _Failure:
        assert self._session is not None
        assert self._sandbox is not None
        sandbox = self._sandbox
        try:
            await self._unfreeze()
        except OSError:  # its cgroup is gone or unusable: as good as dead
            self._drain_output()
            error_type, message = self._exit_reason()
            return _Failure(error_type, message=message)
        sandbox.reset_memory_peak()
        invocation = Invocation(
            request_id=req.request_id,
            payload=req.payload,
            deadline_ms=int(deadline * 1000),
            invoked_function_arn=req.invoked_arn,
            trace_id=req.trace_id,
            client_context=req.client_context,
            cognito_identity=req.cognito_identity,
            tenant_id=req.tenant_id,
        )
        try:
            result = await self._race(self._session.invoke(invocation), deadline - time.time())
        except TimeoutError:
            self._log.platform(logformat.timed_out(req.request_id, self.spec.timeout_s))
            return _Failure("Sandbox.Timedout", status="timeout")
        except (_Died, SessionAborted):
            self._drain_output()
            error_type, message = self._exit_reason()
            return _Failure(error_type, message=message)
        if isinstance(result, InitError):
            return _Failure(result.error_type, body=result.body)
        assert isinstance(result, (FunctionResponse, FunctionError))
        return result

    def _failure_body(self, req: InvokeRequest, failure: _Failure) -> bytes:
        if failure.body is not None:
            return failure.body
        if failure.status == "timeout":
            message = f"Task timed out after {self.spec.timeout_s:.2f} seconds"
        else:
            message = failure.message or "Runtime exited without providing a reason"
        return _error_body(failure.error_type, f"RequestId: {req.request_id} Error: {message}")

    def _max_memory_mb(self) -> int:
        sandbox = self._sandbox
        if sandbox is None:
            return 0
        return math.ceil(sandbox.memory_peak_bytes() / (1 << 20))

    async def settle(self) -> bool:
        """After a result: wait until the runtime asks for the next event (the end of the invoke
        phase). True when the environment is READY again; False (and reset) when the runtime does
        not come back within the function's timeout."""
        if self.state is not EnvState.FINISHING:
            return self.state is EnvState.READY
        assert self._session is not None
        try:
            await self._race(self._session.wait_idle(), float(self.spec.timeout_s))
        except (TimeoutError, _Died, SessionAborted):
            await self.reset()
            return False
        self._move(EnvState.READY)
        self.last_used = self._clock()
        return True

    def settle_now(self) -> bool:
        """``settle`` when there is nothing to wait for: the runtime is already back on
        ``/next`` (the usual case: our runtime clients ask for it in the write that carries the
        result). False when the caller must ``await settle()``."""
        session = self._session
        if self.state is not EnvState.FINISHING or session is None or not session.idle:
            return False
        self._move(EnvState.READY)
        self.last_used = self._clock()
        return True

    def freeze_later(self, delay: float, spawn: Spawn) -> None:
        """Freeze the sandbox once it has stayed READY for ``delay`` seconds.

        A timer, not a task: the next invocation cancels it for the price of a handle (and thaws
        if the freeze had begun), so a quick succession of invocations never pays for freeze and
        thaw. ``spawn`` runs the freeze (the worker's task group). Lambda freezes at once; a
        delay of a few milliseconds lets a background thread run that much longer, no more."""
        if self._freeze_timer is not None:
            self._freeze_timer.cancel()
        loop = asyncio.get_running_loop()
        self._freeze_timer = loop.call_later(max(delay, 0.0), self._freeze_due, spawn)

    def _freeze_due(self, spawn: Spawn) -> None:
        self._freeze_timer = None
        sandbox = self._sandbox
        if self.state is EnvState.READY and sandbox is not None and self._freezer is None:
            self._frozen = True  # set first: a cancelled freeze must still be undone
            # If it fails (a task that will not freeze, the cgroup gone), ``_frozen`` stays set:
            # the next invocation's thaw undoes any partial freeze, or finds the sandbox dead.
            task = self._freezer = spawn(sandbox.freeze())
            task.add_done_callback(self._freeze_done)

    def _freeze_done(self, task: asyncio.Task[None]) -> None:
        if self._freezer is task:
            self._freezer = None

    def _cancel_freeze(self) -> asyncio.Task[None] | None:
        """Stop a pending or running freeze; returns the running one (to await)."""
        if self._freeze_timer is not None:
            self._freeze_timer.cancel()
            self._freeze_timer = None
        freezer, self._freezer = self._freezer, None
        if freezer is not None:
            freezer.cancel()
        return freezer

    async def _unfreeze(self) -> None:
        freezer = self._cancel_freeze()
        if freezer is not None:
            with suppress(asyncio.CancelledError):
                await freezer
        if self._frozen and self._sandbox is not None:
            await self._sandbox.thaw()
            self._frozen = False
