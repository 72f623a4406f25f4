"""The environments of one function version: reuse warm ones, start more under concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from brazier.model.invocation import FunctionSpec
from brazier.worker.environment import Environment, EnvState

EnvFactory = Callable[[FunctionSpec], Environment]

# How long an invocation waits for an environment that is about to become free (its runtime has
# answered and is about to ask for the next event) before starting a new one instead. One CPU
# period of the sandbox's cgroup: a small function that spent its CPU share answers within it,
# and waiting is cheaper than a cold start and another environment's memory.
REUSE_WAIT_S = 0.02


class EnvironmentPool:
    """Environments of one ``FunctionSpec``. One invocation per environment at a time."""

    def __init__(self, spec: FunctionSpec, make_env: EnvFactory, *, freeze_after: float) -> None:
        self.spec = spec
        self._freeze_after = freeze_after
        self._make_env = make_env
        self.environments: list[Environment] = []
        self._ready: list[Environment] = []  # LIFO: the warmest first
        self._freed = asyncio.Condition()
        self.cold_starts = 0
        self.warm_starts = 0
        self.retired = False
        self.pinned = False  # provisioned: exempt from idle reaping

    def add(self, env: Environment) -> Environment:
        self.environments.append(env)
        return env

    async def prewarm(self, env: Environment) -> None:
        """Initialise ``env`` ahead of any invocation (provisioned concurrency)."""
        if await env.prewarm():
            self._ready.append(env)
            await env.freeze_when_idle(self._freeze_after)

    def acquire_ready(self) -> Environment | None:
        """An already initialised environment, or None (never starts one)."""
        for env in reversed(self._ready):
            if env.state is EnvState.READY:
                self._ready.remove(env)
                self.warm_starts += 1
                return env
        return None

    @property
    def ready_count(self) -> int:
        return sum(e.state is EnvState.READY for e in self.environments)

    def acquire_nowait(self) -> Environment | None:
        while self._ready:
            env = self._ready.pop()
            if env.state in (EnvState.READY, EnvState.NEW):
                self.warm_starts += env.state is EnvState.READY
                return env
        return None

    async def acquire(self) -> Environment:
        """An environment for one invocation: a ready one, one finishing its last invocation
        (waited for briefly), or a new one."""
        env = self.acquire_nowait()
        if env is not None:
            return env
        if any(e.state is EnvState.FINISHING for e in self.environments):
            try:
                async with asyncio.timeout(REUSE_WAIT_S), self._freed:
                    await self._freed.wait_for(lambda: bool(self._ready))
            except TimeoutError:
                pass
            env = self.acquire_nowait()
            if env is not None:
                return env
        env = self._make_env(self.spec)
        self.environments.append(env)
        self.cold_starts += 1
        return env

    async def release(self, env: Environment) -> None:
        """Hand back after an invocation: settle (wait for /next, freeze) then offer for reuse."""
        await env.settle()
        if self.retired:
            self.forget(env)
            await env.aclose()
            return
        if env.state is EnvState.CLOSED:
            self.forget(env)
            return
        self._ready.append(env)
        async with self._freed:
            self._freed.notify_all()
        await env.freeze_when_idle(self._freeze_after)

    def forget(self, env: Environment) -> None:
        if env in self.environments:
            self.environments.remove(env)
        if env in self._ready:
            self._ready.remove(env)

    def idle_since(self, cutoff: float) -> list[Environment]:
        """Ready environments unused since ``cutoff``, removed from the pool (to be reaped)."""
        stale = [e for e in self._ready if e.last_used < cutoff]
        for env in stale:
            self.forget(env)
        return stale

    def retire(self) -> list[Environment]:
        """Stop offering environments. Returns the idle ones for the caller to close; busy ones
        finish their invocation and are closed when released."""
        self.retired = True
        idle = [e for e in self.environments if e.state not in (EnvState.BUSY, EnvState.FINISHING)]
        for env in idle:
            self.forget(env)
        return idle

    def take_all(self) -> list[Environment]:
        """Remove every environment, busy or not (shutdown)."""
        self.retired = True
        envs, self.environments, self._ready = self.environments, [], []
        return envs

    @property
    def busy(self) -> int:
        return sum(e.state in (EnvState.BUSY, EnvState.FINISHING) for e in self.environments)
