"""The environments of one function version: reuse warm ones, start more under concurrency."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from brazier.model.invocation import FunctionSpec
from brazier.worker.environment import Environment, EnvState, Spawn

EnvFactory = Callable[[FunctionSpec], Environment]

# How long an invocation waits for an environment that is about to become free (its runtime has
# answered and is about to ask for the next event) before starting a new one instead. One CPU
# period of the sandbox's cgroup: a small function that spent its CPU share answers within it,
# and waiting is cheaper than a cold start and another environment's memory.
REUSE_WAIT_S = 0.02


class EnvironmentPool:
    """Environments of one ``FunctionSpec``. One invocation per environment at a time."""

    def __init__(
        self, spec: FunctionSpec, make_env: EnvFactory, spawn: Spawn, *, freeze_after: float
    ) -> None:
        self.spec = spec
        self._freeze_after = freeze_after
        self._make_env = make_env
        self._spawn = spawn
        self.environments: list[Environment] = []
        self._ready: list[Environment] = []  # LIFO: the warmest first
        # Invocations waiting briefly for a FINISHING environment (see acquire).
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
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
            self.offer(env)

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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REUSE_WAIT_S
        while any(e.state is EnvState.FINISHING for e in self.environments):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            freed = loop.create_future()
            self._waiters.append(freed)
            try:
                async with asyncio.timeout(remaining):
                    await freed
            except TimeoutError:
                break
            finally:
                freed.cancel()  # a no-op once set; lets offer() skip it otherwise
            env = self.acquire_nowait()
            if env is not None:
                return env
        env = self._make_env(self.spec)
        self.environments.append(env)
        self.cold_starts += 1
        return env

    def offer(self, env: Environment) -> bool:
        """Take back an environment after its invocation for reuse: READY (frozen once idle) or
        NEW (reset by a failure: the next invocation re-initialises it, keeping its log stream
        and /tmp). Wakes one waiting invocation. False, doing nothing, when the pool is retired
        or ``env`` is in neither state."""
        if self.retired or env.state not in (EnvState.READY, EnvState.NEW):
            return False
        self._ready.append(env)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
        if env.state is EnvState.READY:
            env.freeze_later(self._freeze_after, self._spawn)
        return True

    async def release(self, env: Environment) -> None:
        """Hand back after an invocation: settle (wait for /next), then offer for reuse."""
        await env.settle()
        if self.offer(env):
            return
        self.forget(env)
        if env.state is not EnvState.CLOSED:
            await env.aclose()  # the pool was retired

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
