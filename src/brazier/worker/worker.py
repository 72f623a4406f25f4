"""The local worker: pools of environments per function version, idle reaping.

Implements the scheduler's ``WorkerClient`` protocol (structurally: the data plane never imports
the control plane).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from brazier.model.errors import RuntimeMissing, ServiceException, TooManyRequestsException
from brazier.model.invocation import (
    FunctionSpec,
    InvokeRequest,
    InvokeResult,
    LogSink,
    WorkerStatistics,
)
from brazier.model.sessions import SessionIssuer
from brazier.sandbox import (
    RuntimeUnavailable,
    SandboxCapacityExceeded,
    SandboxFactory,
    SandboxUnavailable,
)
from brazier.worker.environment import Environment, EnvState
from brazier.worker.logbuffer import IngestQuotas
from brazier.worker.pool import EnvironmentPool

log = logging.getLogger(__name__)


class LocalWorker:
    def __init__(
        self,
        open_factory: Callable[[], AbstractAsyncContextManager[SandboxFactory]],
        sink: LogSink,
        *,
        idle_ttl: float,
        init_timeout: float,
        reap_interval: float = 5.0,
        freeze_after: float = 0.005,
        prewarm_runtimes: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
        sessions: SessionIssuer | None = None,
        endpoints: Mapping[str, str] | None = None,
    ) -> None:
        """``sessions``: mints each environment's credentials; ``endpoints``: the
        ``AWS_ENDPOINT_URL_*`` variables of every function (decision 0029)."""
        self._open_factory = open_factory
        self._sessions = sessions
        self._endpoints = dict(endpoints or {})
        self._factory: SandboxFactory | None = None
        self._sink = sink
        self._idle_ttl = idle_ttl
        self._init_timeout = init_timeout
        self._reap_interval = min(reap_interval, max(idle_ttl / 2, 0.05))
        self._clock = clock
        self._freeze_after = freeze_after
        self._prewarm_runtimes = prewarm_runtimes
        self._pools: dict[tuple[str, ...], EnvironmentPool] = {}
        self._log_quotas = IngestQuotas(clock=clock)
        self._tasks: asyncio.TaskGroup | None = None
        self._live: set[Environment] = set()  # every environment not known to be closed
        self.reaped = 0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[LocalWorker]:
        """Own the background work (settling environments, reaping); close everything on exit."""
        async with self._open_factory() as factory, asyncio.TaskGroup() as tg:
            self._factory = factory
            self._tasks = tg
            prewarm = tg.create_task(self._prewarm(factory))
            reaper = tg.create_task(self._reap_forever())
            try:
                yield self
            finally:
                prewarm.cancel()  # stopping: no "runtimes ready" after "shutting down"
                reaper.cancel()
                self._tasks = None
                envs = [e for p in self._pools.values() for e in p.take_all()]
                self._pools.clear()
                await asyncio.gather(*(e.aclose() for e in envs), return_exceptions=True)
                self._factory = None

    async def _prewarm(self, factory: SandboxFactory) -> None:
        """Zygotes boot in ~100 ms: have every installed runtime's ready before its first cold
        start instead of during it."""
        try:
            started = await factory.prewarm(self._prewarm_runtimes)
            log.info("runtimes ready: %s", ", ".join(started) or "none")
        except Exception:
            log.exception("starting runtime zygotes ahead of time failed")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Background work of the environments (releases, freezes), owned by the worker's task
        group. A failure there is logged: it must not end the group, and with it the worker."""
        guarded = _guarded(work)
        if self._tasks is None:  # stopping: every environment is being closed anyway
            return asyncio.get_running_loop().create_task(guarded)
        return self._tasks.create_task(guarded)

    def _new_env(self, spec: FunctionSpec) -> Environment:
        assert self._factory is not None
        env = Environment(
            spec,
            self._factory,
            self._sink,
            init_timeout=self._init_timeout,
            clock=self._clock,
            log_quota=self._log_quotas.bucket(spec.account, spec.region, spec.name),
            sessions=self._sessions,
            endpoints=self._endpoints,
        )
        self._live.add(env)
        return env

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        if self._tasks is None:
            raise ServiceException("The worker is not running.")
        pool, env = await self._environment_for(request)
        try:
            result = await env.invoke(request)
        except SandboxCapacityExceeded as exc:
            await env.aclose()
            pool.forget(env)
            # As Lambda throttles past what it can scale to: transient, the caller retries.
            log.info("invoke of %s throttled: %s", request.spec.name, exc)
            raise TooManyRequestsException(
                "Rate Exceeded.", reason="ConcurrentInvocationLimitExceeded"
            ) from exc
        except RuntimeUnavailable as exc:
            await env.aclose()
            pool.forget(env)
            fix = f"Install it with: brazier runtimes install {exc.runtime}"
            raise RuntimeMissing(f"{exc}. {fix}") from exc
        except SandboxUnavailable as exc:
            await env.aclose()
            pool.forget(env)
            raise ServiceException(str(exc)) from exc
        except BaseException:
            await env.aclose()
            pool.forget(env)
            raise
        if not (env.settle_now() and pool.offer(env)):
            self._spawn(pool.release(env))
        return result

    def _pool(self, spec: FunctionSpec) -> EnvironmentPool:
        pool = self._pools.get(spec.key)
        if pool is None:
            pool = self._pools[spec.key] = EnvironmentPool(
                spec, self._new_env, self._spawn, freeze_after=self._freeze_after
            )
        return pool

    async def _environment_for(self, request: InvokeRequest) -> tuple[EnvironmentPool, Environment]:
        """Provisioned environments first; when all are busy, the on-demand fallback."""
        pool = self._pool(request.spec)
        if request.spec.provisioned:
            env = pool.acquire_ready()
            if env is not None or request.fallback is None:
                if env is None:
                    env = await pool.acquire()
                return pool, env
            pool = self._pool(request.fallback)
        return pool, await pool.acquire()

    def paths_in_use(self) -> set[Path]:
        """Directories environments run from: every pool's (a pool exists before its first
        environment starts) and every environment's not closed yet (a retired pool's busy ones
        finish their invocation outside any pool)."""
        self._live = {e for e in self._live if e.state is not EnvState.CLOSED}
        specs = [p.spec for p in self._pools.values()] + [e.spec for e in self._live]
        paths = {s.code_dir for s in specs}
        paths |= {s.layer_dir for s in specs if s.layer_dir is not None}
        return paths

    async def provision(self, spec: FunctionSpec, count: int) -> int:
        """Keep ``count`` initialised environments of a provisioned ``spec``; returns how many
        are ready now. Idempotent; never reaped while provisioned; 0 releases them."""
        pool = self._pool(spec)
        pool.pinned = count > 0
        missing = count - len(pool.environments)
        if missing > 0:
            fresh = [pool.add(self._new_env(spec)) for _ in range(missing)]
            await asyncio.gather(*(pool.prewarm(env) for env in fresh))
        elif missing < 0:
            surplus = pool.idle_since(float("inf"))[:-missing]
            await asyncio.gather(*(e.aclose() for e in surplus), return_exceptions=True)
        if count == 0:
            self._pools.pop(spec.key, None)
        return pool.ready_count

    async def retire(self, version: tuple[str, str, str, str], keep: str | None) -> None:
        """Close the environments of a function version that run another revision than
        ``keep`` (all of them when ``keep`` is None)."""
        stale = [k for k in self._pools if k[:4] == version and k[4] != keep]
        envs = [e for key in stale for e in self._pools.pop(key).retire()]
        await asyncio.gather(*(e.aclose() for e in envs), return_exceptions=True)

    async def reap(self) -> int:
        """Close environments idle for longer than the TTL. Returns how many."""
        cutoff = self._clock() - self._idle_ttl
        victims = [e for p in self._pools.values() if not p.pinned for e in p.idle_since(cutoff)]
        for key in [k for k, p in self._pools.items() if not p.environments]:
            del self._pools[key]
        await asyncio.gather(*(e.aclose() for e in victims), return_exceptions=True)
        self.reaped += len(victims)
        return len(victims)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self._reap_interval)
            try:
                await self.reap()
            except Exception:
                log.exception("reaping idle environments failed")

    def statistics(self) -> WorkerStatistics:
        pools = list(self._pools.values())
        total = sum(len(p.environments) for p in pools)
        busy = sum(p.busy for p in pools)
        return WorkerStatistics(
            environments=total,
            busy=busy,
            idle=total - busy,
            cold_starts=sum(p.cold_starts for p in pools),
            warm_starts=sum(p.warm_starts for p in pools),
            reaped=self.reaped,
        )


async def _guarded(work: Coroutine[Any, Any, None]) -> None:
    try:
        await work
    except Exception:
        log.exception("background work of an environment failed")
